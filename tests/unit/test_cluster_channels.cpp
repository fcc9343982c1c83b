#include "src/base/log.hpp"

// The channels actor of cluster mode with a stand-in cluster actor: the
// test plays Redis's part (the reads' answers) and the feed's (remote).

#include "actors/cluster_channels.hpp"
#include "src/wire/protocol.hpp"
#include "tests/unit/actor_fixture.hpp"
#include "tests/unit/stream_helpers.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;
using offsets = std::vector<std::int64_t>;

// What the channels actor asked of the cluster, and its next answers.
struct channel_cluster_log {
  strings events;
  std::vector<read_request> reads;
  std::vector<payload> published;
  // The answers to the next reads, in order; an error when none is left.
  std::vector<stream_read> answers;
  bool subscribe_ok = true;
  std::uint64_t top = 0;
};

cluster_actor::behavior_type fake_cluster(cluster_actor::pointer,
                                          std::shared_ptr<channel_cluster_log> log) {
  return {
      [](subscribe_atom, user_id) { return true; },
      [](unsub_atom, user_id) {},
      [](publish_atom, user_id, const payload&) { return caf::make_result(true, false); },
      [log](subscribe_atom, const std::string& channel) {
        log->events.push_back("subscribe " + channel);
        return log->subscribe_ok;
      },
      [log](unsub_atom, const std::string& channel) {
        log->events.push_back("unsub " + channel);
      },
      [log](publish_atom, const std::string&,
            const payload& frame) -> caf::result<std::uint64_t> {
        log->published.push_back(frame);
        return ++log->top;
      },
      [](read_atom, user_id, const read_request&) { return stream_read{}; },
      [log](read_atom, const std::string& channel,
            const read_request& req) -> caf::result<stream_read> {
        log->events.push_back("read " + channel);
        log->reads.push_back(req);
        if (log->answers.empty())
          return caf::make_error(caf::sec::request_receiver_down);
        auto answer = std::move(log->answers.front());
        log->answers.erase(log->answers.begin());
        return answer;
      },
      [](feed_atom, const cluster_channels_actor&) {},
      [](remote_atom, const std::string&, const std::string&) {},
      [](redis_state_atom, bool) {},
  };
}

payload publication_at(std::uint64_t offset) {
  return make_payload(
      protocol::publication("c", "p" + std::to_string(offset), offset, "server", "1", 1));
}

stream_read read_at(std::uint64_t top, const std::vector<std::uint64_t>& kept = {}) {
  return read_of("E", top, kept, publication_at);
}

struct cluster_channels_fixture : actor_fixture {
  std::shared_ptr<channel_cluster_log> log = std::make_shared<channel_cluster_log>();
  cluster_actor cluster = sys.spawn(fake_cluster, log);
  hub_settings cfg = settings();
  cluster_channels_actor channels = spawn_cluster_channels(sys, cfg, cluster, st);

  static hub_settings settings() {
    auto result = make_hub_settings(node_options{});
    result.node_id = "n1";
    result.incarnation = "i1";
    return result;
  }

  static channel_request on(std::string channel, recovery_request recover = {},
                            std::string ref = {}) {
    channel_request req;
    req.channel = std::move(channel);
    req.recover = std::move(recover);
    req.has_ref = !ref.empty();
    req.ref = std::move(ref);
    return req;
  }

  void redis_up(bool up = true) { send(channels, redis_state_atom::value, up); }

  std::pair<connection_actor, std::shared_ptr<probe_log>>
  subscriber(recovery_request recover = {}) {
    auto conn_log = std::make_shared<probe_log>();
    auto conn = spawn_probe(conn_log);
    send(channels, subscribe_atom::value, conn, on("c", std::move(recover), "s"));
    return {conn, conn_log};
  }

  void remote(std::uint64_t offset, std::string epoch = "E") {
    send(channels, remote_atom::value, std::string{"c"}, std::move(epoch),
         stream_entry{offset, publication_at(offset)});
  }
};

} // namespace

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: subscribe answers subscribed at the read's "
                  "position, then the feed") {
  redis_up();
  log->answers.push_back(read_at(5));
  auto [conn, conn_log] = subscriber();
  CHECK(log->events == strings{"subscribe c", "read c"});
  CHECK_FALSE(log->reads[0].after);
  CHECK(log->reads[0].count == 0);
  REQUIRE(types_of(conn_log->delivered) == strings{"subscribed"});
  auto sub = parse(conn_log->delivered[0]);
  CHECK(sub.at("epoch") == "E");
  CHECK(sub.at("offset") == 5);
  CHECK(sub.at("ref") == "s");
  CHECK_FALSE(sub.contains("recovered"));
  remote(5); // appended before the read: not again
  remote(6);
  remote(6);
  CHECK(publication_offsets(*conn_log) == offsets{6});
  CHECK(st.channels_active == 1);
  CHECK(st.subscriptions_active == 1);
}

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: a recovered subscribe replays what was missed") {
  redis_up();
  log->answers.push_back(read_at(5, {3, 4, 5}));
  auto [conn, conn_log] = subscriber(stream_position{"E", 2});
  REQUIRE(log->reads.size() == 1);
  CHECK(log->reads[0].after == 2u);
  CHECK(log->reads[0].count == cfg.recover_limit);
  REQUIRE(!conn_log->delivered.empty());
  auto sub = parse(conn_log->delivered[0]);
  CHECK(sub.at("type") == "subscribed");
  CHECK(sub.at("recovered") == true);
  CHECK(publication_offsets(*conn_log) == offsets{3, 4, 5});
  CHECK(st.recovered == 1u);
}

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: Redis down ends a subscribe and refuses a publish "
                  "with unavailable") {
  auto [conn, conn_log] = subscriber();
  CHECK(conn_log->ended == strings{"c"});
  REQUIRE(conn_log->delivered.size() == 1);
  auto refused = parse(conn_log->delivered[0]);
  CHECK(refused.at("type") == "error");
  CHECK(refused.at("code") == "unavailable");
  CHECK(refused.at("ref") == "s");
  auto req = on("c", {}, "p");
  req.data = "1";
  send(channels, publish_atom::value, conn, user_id{7}, req);
  REQUIRE(conn_log->delivered.size() == 2);
  CHECK(parse(conn_log->delivered[1]).at("code") == "unavailable");
  CHECK(conn_log->ended.size() == 1); // a publish ends nothing
  CHECK(log->events.empty());
  CHECK(log->published.empty());
  CHECK(st.subscriptions_active == 0);
}

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: a read failing at subscribe ends it with "
                  "unavailable") {
  redis_up();
  auto [conn, conn_log] = subscriber(); // no answer for the read: an error
  CHECK(conn_log->ended == strings{"c"});
  REQUIRE(conn_log->delivered.size() == 1);
  CHECK(parse(conn_log->delivered[0]).at("code") == "unavailable");
  CHECK(log->events == strings{"subscribe c", "read c", "unsub c"});
  CHECK(st.subscriptions_active == 0);
  CHECK(st.channels_active == 0);
}

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: a gap the stream cannot replay ends the "
                  "subscription with insufficient_state") {
  redis_up();
  log->answers.push_back(read_at(2));
  log->answers.push_back(read_at(5, {4, 5})); // 3 was trimmed meanwhile
  auto [conn, conn_log] = subscriber();
  remote(5);
  REQUIRE(log->reads.size() == 2);
  CHECK(log->reads[1].after == 2u);
  CHECK(conn_log->ended == strings{"c"});
  REQUIRE(types_of(conn_log->delivered) == strings{"subscribed", "unsubscribed"});
  CHECK(parse(conn_log->delivered[1]).at("reason") == "insufficient_state");
  CHECK(log->events.back() == "unsub c");
  CHECK(st.subscriptions_active == 0);
  CHECK(st.channels_active == 0);
}

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: a gap the stream can replay is filled") {
  redis_up();
  log->answers.push_back(read_at(2));
  log->answers.push_back(read_at(5, {3, 4, 5}));
  auto [conn, conn_log] = subscriber();
  remote(5);
  remote(6);
  CHECK(publication_offsets(*conn_log) == offsets{3, 4, 5, 6});
  CHECK(conn_log->ended.empty());
}

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: publish answers published with the offset, "
                  "the publication comes by the feed") {
  redis_up();
  log->answers.push_back(read_at(6));
  log->top = 6;
  auto [conn, conn_log] = subscriber();
  auto req = on("c", {}, "p");
  req.data = R"({"x":1})";
  send(channels, publish_atom::value, conn, user_id{7}, req);
  REQUIRE(log->published.size() == 1);
  auto sent = parse(log->published[0]);
  CHECK(sent.at("offset") == 0); // the append script writes it
  CHECK(sent.at("from") == "7");
  CHECK(sent.at("id") == "n1-i1-p1");
  REQUIRE(types_of(conn_log->delivered) == strings{"subscribed", "published"});
  auto published = parse(conn_log->delivered[1]);
  CHECK(published.at("offset") == 7);
  CHECK(published.at("ref") == "p");
  CHECK(published.at("id") == "n1-i1-p1");
  CHECK(st.publications == 1u);
}

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: the HTTP publish answers id and offset") {
  redis_up();
  auto reply = request<std::string, std::uint64_t>(channels, publish_atom::value,
                                                   std::string{"c"}, std::string{"1"});
  REQUIRE(reply->has_value());
  CHECK(std::get<0>(**reply) == "n1-i1-p1");
  CHECK(std::get<1>(**reply) == 1u);
  CHECK(parse(log->published.at(0)).at("from") == "server");
}

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: unsubscribe answers unsubscribed and stops the "
                  "feed") {
  redis_up();
  log->answers.push_back(read_at(0));
  auto [conn, conn_log] = subscriber();
  send(channels, unsub_atom::value, conn, on("c", {}, "u"));
  REQUIRE(types_of(conn_log->delivered) == strings{"subscribed", "unsubscribed"});
  auto gone = parse(conn_log->delivered[1]);
  CHECK(gone.at("reason") == "client");
  CHECK(gone.at("ref") == "u");
  CHECK(conn_log->ended.empty()); // the connection asked: it knows
  CHECK(log->events.back() == "unsub c");
  remote(1);
  CHECK(publication_offsets(*conn_log).empty());
  CHECK(st.subscriptions_active == 0);
}

TEST_CASE_FIXTURE(cluster_channels_fixture,
                  "cluster channels: a closed connection's subscriptions go with it") {
  redis_up();
  log->answers.push_back(read_at(0));
  auto [conn, conn_log] = subscriber();
  kill(conn);
  CHECK(log->events.back() == "unsub c");
  CHECK(st.subscriptions_active == 0);
  CHECK(st.channels_active == 0);
}
