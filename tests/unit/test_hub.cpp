#include "src/base/log.hpp"

#include "actors/hub.hpp"
#include "actors/presence.hpp"
#include "src/base/clock.hpp"
#include "src/base/incarnation.hpp"
#include "tests/unit/actor_fixture.hpp"
#include "tests/unit/stream_helpers.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using registration = std::tuple<admission, welcome_info>;

std::vector<std::uint64_t> offsets_of(const std::vector<payload>& frames) {
  std::vector<std::uint64_t> result;
  for (auto& frame : frames)
    result.push_back(boost::json::value_to<std::uint64_t>(parse(frame).at("offset")));
  return result;
}

using offsets = std::vector<std::uint64_t>;

// A message frame of a user stream at `offset`.
payload message_at(std::uint64_t offset) {
  return make_payload(R"({"type":"message","offset":)" + std::to_string(offset) + "}");
}

stream_read read_at(std::string epoch, std::uint64_t top, const offsets& kept = {}) {
  return read_of(std::move(epoch), top, kept, message_at);
}

struct hub_fixture : actor_fixture {
  presence_actor presence = spawn_presence(sys, presence_with_grace(100ms), st);
  hub_settings cfg = make_settings();
  hub_actor hub = spawn_hub(sys, cfg, presence, st);

  static hub_settings make_settings() {
    auto result = make_hub_settings(node_options{});
    result.node_id = "n1";
    result.incarnation = "i1";
    result.max_connections = 4;
    result.max_connections_per_user = 3;
    result.ping_interval = 20s;
    result.sweep_interval = 30s;
    return result;
  }

  registration register_as(user_id user, const connection_actor& conn,
                           recovery_request recover = std::nullopt) {
    auto reply =
        request<admission, welcome_info>(hub, register_atom::value, user, conn, recover);
    REQUIRE(reply->has_value());
    return **reply;
  }

  // A registered stand-in connection and what it receives.
  std::pair<connection_actor, std::shared_ptr<probe_log>> join(user_id user) {
    auto log = std::make_shared<probe_log>();
    auto conn = spawn_probe(log);
    REQUIRE(std::get<0>(register_as(user, conn)) == admission::admitted);
    return {conn, log};
  }

  std::tuple<std::string, bool> route(user_id to, std::string data) {
    auto answers = route_all(hub, "42", outgoing_batch{{to, std::move(data)}});
    REQUIRE(answers.size() == 1);
    return {answers[0].id, answers[0].online};
  }

  std::tuple<bool, std::uint64_t> presence_count(user_id user) {
    auto reply = request<bool, std::uint64_t>(presence, count_atom::value, user);
    REQUIRE(reply->has_value());
    return **reply;
  }
};

} // namespace

TEST_CASE_FIXTURE(hub_fixture, "hub: register, then DOWN is the unregistration") {
  auto conn = spawn_probe(std::make_shared<probe_log>());
  auto [verdict, info] = register_as(7, conn);
  CHECK(verdict == admission::admitted);
  CHECK(info.connection_id == "n1-c1");
  CHECK(st.connections_active == 1);
  CHECK(st.connections_opened == 1);
  CHECK(st.users_online_local == 1);
  CHECK(presence_count(7) == std::tuple<bool, std::uint64_t>{true, 1});
  kill(conn);
  CHECK(st.connections_active == 0);
  CHECK(st.connections_opened == 1);
  CHECK(st.users_online_local == 0);
  // Presence was told: the user is in its grace period, with no connection.
  CHECK(presence_count(7) == std::tuple<bool, std::uint64_t>{true, 0});
}

TEST_CASE_FIXTURE(hub_fixture, "hub: connection ids are unique") {
  auto a = spawn_probe(std::make_shared<probe_log>());
  auto b = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<1>(register_as(7, a)).connection_id == "n1-c1");
  CHECK(std::get<1>(register_as(7, b)).connection_id == "n1-c2");
  CHECK(st.users_online_local == 1);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: the node-wide cap answers over_capacity") {
  for (user_id user = 1; user <= 4; ++user)
    join(user);
  auto extra = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<0>(register_as(5, extra)) == admission::over_capacity);
  CHECK(st.connections_active == 4);
  CHECK(st.connections_opened == 4);
  CHECK(st.handshakes_rejected[static_cast<int>(rejection::over_capacity)] == 1);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: the per-user cap answers too_many_connections") {
  for (int i = 0; i < 3; ++i)
    join(7);
  auto extra = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<0>(register_as(7, extra)) == admission::too_many_connections);
  CHECK(std::get<0>(register_as(8, extra)) == admission::admitted);
  CHECK(st.connections_active == 4);
  CHECK(st.handshakes_rejected[static_cast<int>(rejection::too_many_connections)] == 1);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: a freed slot can be used again") {
  join(1);
  join(2);
  join(3);
  auto [last, log] = join(4);
  kill(last);
  auto again = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<0>(register_as(5, again)) == admission::admitted);
}

TEST_CASE_FIXTURE(hub_fixture,
                  "hub: route delivers one shared payload to every connection") {
  auto [a, log_a] = join(7);
  auto [b, log_b] = join(7);
  auto [c, log_c] = join(7);
  auto [other, log_other] = join(8);
  auto [id, online] = route(7, R"({"x":1})");
  CHECK(id == "n1-i1-m1");
  CHECK(online);
  REQUIRE(log_a->delivered.size() == 1);
  REQUIRE(log_b->delivered.size() == 1);
  REQUIRE(log_c->delivered.size() == 1);
  CHECK(log_b->delivered[0] == log_a->delivered[0]);
  CHECK(log_c->delivered[0] == log_a->delivered[0]);
  CHECK(log_other->delivered.empty());
  CHECK(st.messages_delivered == 3);
  auto frame = parse(log_a->delivered[0]);
  CHECK(frame.at("type") == "message");
  CHECK(frame.at("id") == "n1-i1-m1");
  CHECK(frame.at("from") == "42");
  CHECK(frame.at("data") == boost::json::parse(R"({"x":1})"));
}

TEST_CASE_FIXTURE(hub_fixture, "hub: deliveries keep the order of the routes") {
  auto [conn, log] = join(7);
  for (int i = 0; i < 5; ++i)
    caf::anon_send(hub, route_atom::value, std::string{"42"},
                   outgoing_batch{{user_id{7}, std::to_string(i)}});
  run();
  REQUIRE(log->delivered.size() == 5);
  for (int i = 0; i < 5; ++i)
    CHECK(parse(log->delivered[i]).at("data") == i);
}

TEST_CASE_FIXTURE(hub_fixture,
                  "hub: a batch is routed in order and answered once the last is known") {
  auto [conn, log] = join(7);
  // The second recipient is not here: its answer waits for presence.
  auto answers = route_all(hub, "42", outgoing_batch{{7, "1"}, {9, "2"}, {7, "3"}});
  REQUIRE(answers.size() == 3);
  CHECK(answers[0].id == "n1-i1-m1");
  CHECK(answers[0].online);
  CHECK(answers[1].id == "n1-i1-m2");
  CHECK_FALSE(answers[1].online);
  CHECK(answers[2].id == "n1-i1-m3");
  CHECK(answers[2].online);
  REQUIRE(log->delivered.size() == 2);
  CHECK(parse(log->delivered[0]).at("data") == 1);
  CHECK(parse(log->delivered[1]).at("data") == 3);
}

TEST_CASE("incarnation is the start time in base 36") {
  CHECK(incarnation(0) == "0");
  CHECK(incarnation(35) == "z");
  CHECK(incarnation(36) == "10");
  CHECK(incarnation(1700000000000) == "loyw3v28");
  auto before = incarnation(now_ms());
  auto taken = hub_settings{}.incarnation;
  auto after = incarnation(now_ms());
  CHECK(taken.size() == 8);
  CHECK(before <= taken);
  CHECK(taken <= after);
}

TEST_CASE_FIXTURE(hub_fixture,
                  "hub: a later start with the same node id does not reuse ids") {
  auto later_cfg = cfg;
  later_cfg.incarnation = incarnation(1700000000001);
  cfg.incarnation = incarnation(1700000000000);
  auto earlier = spawn_hub(sys, cfg, presence, st);
  auto later = spawn_hub(sys, later_cfg, presence, st);
  auto first_id = [&](const hub_actor& h) {
    return route_all(h, "42", outgoing_batch{{9, "1"}}).at(0).id;
  };
  CHECK(first_id(earlier) == "n1-loyw3v28-m1");
  CHECK(first_id(later) == "n1-loyw3v29-m1");
}

TEST_CASE_FIXTURE(hub_fixture, "hub: route to an unknown user is answered offline") {
  auto [id, online] = route(9, "1");
  CHECK(id == "n1-i1-m1");
  CHECK_FALSE(online);
  CHECK(st.messages_delivered == 0);
}

TEST_CASE_FIXTURE(hub_fixture,
                  "hub: route to a user in the grace period is answered online") {
  auto [conn, log] = join(7);
  kill(conn);
  CHECK(std::get<1>(route(7, "1")));
  advance(100ms);
  CHECK_FALSE(std::get<1>(route(7, "1")));
}

TEST_CASE_FIXTURE(hub_fixture, "hub: pings and sweeps every connection on its timers") {
  auto [a, log_a] = join(7);
  auto [b, log_b] = join(8);
  advance(20s);
  CHECK(log_a->pings == 1);
  CHECK(log_b->pings == 1);
  CHECK(log_a->sweeps == 0);
  advance(10s);
  CHECK(log_a->sweeps == 1);
  CHECK(log_b->sweeps == 1);
  CHECK(st.sweeps == 1);
  advance(10s);
  advance(10s);
  advance(10s);
  CHECK(log_a->pings == 3);
  CHECK(log_a->sweeps == 2);
  CHECK(st.sweeps == 2);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: shutdown answers once the last connection is gone") {
  auto [a, log_a] = join(7);
  auto stubborn_log = std::make_shared<probe_log>();
  auto stubborn = spawn_probe(stubborn_log, true);
  REQUIRE(std::get<0>(register_as(8, stubborn)) == admission::admitted);
  auto done = request<bool>(hub, shutdown_atom::value);
  CHECK(log_a->shutdowns == 1);
  CHECK(stubborn_log->shutdowns == 1);
  CHECK(st.connections_active == 1);
  CHECK_FALSE(done->has_value());
  kill(stubborn);
  REQUIRE(done->has_value());
  CHECK(std::get<0>(**done));
  CHECK(st.connections_active == 0);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: shutdown with no connection answers at once") {
  auto done = request<bool>(hub, shutdown_atom::value);
  REQUIRE(done->has_value());
  CHECK(std::get<0>(**done));
}

TEST_CASE_FIXTURE(hub_fixture, "hub: no registration after shutdown") {
  request<bool>(hub, shutdown_atom::value);
  auto late = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<0>(register_as(7, late)) == admission::over_capacity);
  CHECK(st.connections_opened == 0);
}

// -- cluster mode ---------------------------------------------------------------

namespace {

// What the hub asked of the cluster, and the sequence of subscriptions and
// registration answers as they happened.
struct cluster_log {
  std::vector<std::string> events;
  std::vector<std::pair<user_id, payload>> published;
  bool online_elsewhere = false;
  // Whether the append stores what the hub publishes (Redis is up).
  bool stored = true;
  std::vector<read_request> reads;
  // The answers to the next reads, in order; the stream's top when none.
  std::vector<stream_read> answers;
  // Reads the stand-in holds until the test releases them.
  bool hold_reads = false;
  std::vector<caf::typed_response_promise<stream_read>> held;
};

// The test's answer to the i-th held read: promises are delivered from
// inside their actor.
using release_atom = caf::atom_constant<caf::atom("release")>;
using fake_cluster_actor =
    cluster_actor::extend<caf::reacts_to<release_atom, std::size_t, stream_read>>;

caf::result<stream_read> read_answer(fake_cluster_actor::pointer self,
                                     const std::shared_ptr<cluster_log>& log,
                                     const read_request& req) {
  log->reads.push_back(req);
  if (log->hold_reads) {
    log->held.push_back(self->make_response_promise<stream_read>());
    return log->held.back();
  }
  if (log->answers.empty())
    return read_at("E", 0);
  auto answer = std::move(log->answers.front());
  log->answers.erase(log->answers.begin());
  return answer;
}

fake_cluster_actor::behavior_type fake_cluster(fake_cluster_actor::pointer self,
                                               std::shared_ptr<cluster_log> log) {
  return {
      [log](subscribe_atom, user_id user) {
        log->events.push_back("subscribe " + std::to_string(user));
        return true;
      },
      [log](unsub_atom, user_id user) {
        log->events.push_back("unsub " + std::to_string(user));
      },
      [log](publish_atom, user_id user, const payload& frame) {
        log->published.emplace_back(user, frame);
        return caf::make_result(log->stored, log->online_elsewhere);
      },
      [](subscribe_atom, const std::string&) { return true; },
      [](unsub_atom, const std::string&) {},
      [](publish_atom, const std::string&, const payload&) { return std::uint64_t{0}; },
      [self, log](read_atom, user_id, const read_request& req) {
        return read_answer(self, log, req);
      },
      [](read_atom, const std::string&, const read_request&) { return read_at("E", 0); },
      [](feed_atom, const cluster_channels_actor&) {},
      [](remote_atom, const std::string&, const std::string&) {},
      [](redis_state_atom, bool) {},
      [log](release_atom, std::size_t i, const stream_read& read) {
        // Moved out, so that no promise keeps its actor alive.
        auto rp = std::move(log->held.at(i));
        rp.deliver(read);
      },
  };
}

struct hub_cluster_fixture : hub_fixture {
  std::shared_ptr<cluster_log> log = std::make_shared<cluster_log>();
  fake_cluster_actor cluster = sys.spawn(fake_cluster, log);

  hub_cluster_fixture() { send(hub, cluster_atom::value, cluster_actor{cluster}); }

  // An entry of user 7's stream from the feed.
  void feed(std::uint64_t offset, std::string epoch = "E") {
    send(hub, remote_atom::value, user_id{7}, std::move(epoch),
         stream_entry{offset, message_at(offset)});
  }

  // Registers and records the answer in the same sequence as the subscriptions.
  connection_actor join_logged(user_id user) {
    auto conn = spawn_probe(std::make_shared<probe_log>());
    auto events = log;
    sys.spawn([=](caf::event_based_actor* self) {
      self->request(hub, caf::infinite, register_atom::value, user, conn,
                    recovery_request{})
          .then([events, user](admission, const welcome_info&) {
            events->events.push_back("admitted " + std::to_string(user));
          });
    });
    run();
    return conn;
  }
};

} // namespace

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: subscribes on the first local connection, before the answer") {
  auto a = join_logged(7);
  auto b = join_logged(7);
  auto c = join_logged(8);
  // Every registration waits for the cluster's answer; the cluster answers
  // at once for a user it hears already.
  CHECK(log->events == std::vector<std::string>{"subscribe 7", "admitted 7",
                                                "subscribe 7", "admitted 7",
                                                "subscribe 8", "admitted 8"});
}

TEST_CASE_FIXTURE(hub_cluster_fixture, "hub: unsubscribes when the last one is gone") {
  auto a = join_logged(7);
  auto b = join_logged(7);
  log->events.clear();
  kill(a);
  CHECK(log->events.empty());
  kill(b);
  CHECK(log->events == std::vector<std::string>{"unsub 7"});
  join_logged(7);
  CHECK(log->events == std::vector<std::string>{"unsub 7", "subscribe 7", "admitted 7"});
}

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: a cluster route is published once and delivered from the feed") {
  auto [a, log_a] = join(7);
  auto [b, log_b] = join(7);
  auto [id, online] = route(7, R"({"x":1})");
  CHECK(id == "n1-i1-m1");
  CHECK(online); // local connections, whatever the cluster says
  REQUIRE(log->published.size() == 1);
  CHECK(log->published[0].first == 7);
  auto sent = parse(log->published[0].second);
  CHECK(sent.at("id") == "n1-i1-m1");
  CHECK(sent.at("offset") == 0); // the append script writes it
  // Not before Redis gave it its offset: every node delivers from the feed.
  CHECK(log_a->delivered.empty());
  CHECK(log_b->delivered.empty());
  feed(1);
  REQUIRE(log_a->delivered.size() == 1);
  CHECK(log_b->delivered == log_a->delivered);
  CHECK(st.messages_delivered == 2);
}

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: a route not stored is delivered here without an offset") {
  log->stored = false;
  auto [a, log_a] = join(7);
  auto [id, online] = route(7, R"({"x":1})");
  CHECK(online);
  REQUIRE(log_a->delivered.size() == 1);
  auto frame = parse(log_a->delivered[0]);
  CHECK(frame.at("id") == id.c_str());
  CHECK(frame.at("data") == boost::json::parse(R"({"x":1})"));
  CHECK_FALSE(frame.contains("offset"));
  CHECK(st.messages_delivered == 1);
  // Not stored and no connection here: the cluster's word decides.
  CHECK_FALSE(std::get<1>(route(9, "1")));
}

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: cluster route to a user with no local connection") {
  CHECK_FALSE(std::get<1>(route(9, "1")));
  log->online_elsewhere = true;
  CHECK(std::get<1>(route(9, "2")));
  REQUIRE(log->published.size() == 2);
  CHECK(parse(log->published[1].second).at("data") == 2);
  CHECK(st.messages_delivered == 0);
}

TEST_CASE_FIXTURE(hub_cluster_fixture, "hub: cluster publishes keep the route order") {
  auto [conn, conn_log] = join(7);
  for (int i = 0; i < 5; ++i)
    caf::anon_send(hub, route_atom::value, std::string{"42"},
                   outgoing_batch{{user_id{i % 2 == 0 ? 7u : 9u}, std::to_string(i)}});
  run();
  REQUIRE(log->published.size() == 5);
  for (int i = 0; i < 5; ++i)
    CHECK(parse(log->published[i].second).at("data") == i);
}

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: a remote message goes to the local connections only") {
  auto [a, log_a] = join(7);
  auto [b, log_b] = join(7);
  auto frame = make_payload(R"({"type":"message","offset":1,"data":1})");
  send(hub, remote_atom::value, user_id{7}, std::string{"E"}, stream_entry{1, frame});
  send(hub, remote_atom::value, user_id{9}, std::string{"E"}, stream_entry{1, frame});
  REQUIRE(log_a->delivered.size() == 1);
  CHECK(log_a->delivered[0] == frame);
  CHECK(log_b->delivered == log_a->delivered);
  CHECK(st.messages_delivered == 2);
  CHECK(log->published.empty());
}

TEST_CASE_FIXTURE(hub_fixture, "hub: standalone routes never need a cluster") {
  auto [conn, log] = join(7);
  CHECK(std::get<1>(route(7, "1")));
  CHECK_FALSE(std::get<1>(route(8, "1")));
  CHECK(log->delivered.size() == 1);
}

// -- user streams (SPEC section 8) -------------------------------------------------

namespace {

struct hub_streams_fixture : hub_fixture {
  // A connection registered with `recover`: its welcome and what it got.
  std::pair<welcome_info, std::shared_ptr<probe_log>> recover(user_id user,
                                                              recovery_request from) {
    auto log = std::make_shared<probe_log>();
    auto conn = spawn_probe(log);
    auto [verdict, info] = register_as(user, conn, std::move(from));
    REQUIRE(verdict == admission::admitted);
    return {info, log};
  }

  void route_n(user_id to, int n) {
    for (int i = 0; i < n; ++i)
      route(to, std::to_string(i));
  }
};

} // namespace

TEST_CASE_FIXTURE(hub_streams_fixture, "hub: message frames carry the stream's offset") {
  auto [info, log] = recover(7, std::nullopt);
  REQUIRE(info.position);
  CHECK(info.position->offset == 0);
  CHECK_FALSE(info.recovered);
  route_n(7, 3);
  CHECK(offsets_of(log->delivered) == offsets{1, 2, 3});
  // Kept for a user with no connection too; the welcome names its position.
  CHECK_FALSE(std::get<1>(route(8, "1")));
  CHECK(std::get<0>(recover(8, std::nullopt)).position->offset == 1);
  CHECK(std::get<0>(recover(7, std::nullopt)).position->epoch == info.position->epoch);
}

TEST_CASE_FIXTURE(hub_streams_fixture, "hub: a recovery replays what was missed") {
  auto [first, first_log] = recover(7, std::nullopt);
  auto epoch = first.position->epoch;
  route_n(7, 4);
  auto [info, log] = recover(7, stream_position{epoch, 1});
  CHECK(info.recovered == true);
  CHECK(info.position->offset == 4);
  CHECK(offsets_of(log->delivered) == offsets{2, 3, 4});
  route(7, "\"live\"");
  CHECK(offsets_of(log->delivered) == offsets{2, 3, 4, 5});
  CHECK(st.recovered == 1);
}

TEST_CASE_FIXTURE(hub_streams_fixture, "hub: what cannot be recovered is not replayed") {
  auto [first, first_log] = recover(7, std::nullopt);
  auto epoch = first.position->epoch;
  route_n(7, 2);
  for (auto from : {stream_position{"other", 1}, stream_position{epoch, 3}}) {
    auto [info, log] = recover(7, from);
    CHECK(info.recovered == false);
    CHECK(info.position->offset == 2);
    CHECK(log->delivered.empty());
  }
  CHECK(st.not_recovered == 2);
}

TEST_CASE_FIXTURE(hub_streams_fixture, "hub: at most recover-limit entries replayed") {
  auto cfg_limited = cfg;
  cfg_limited.recover_limit = 2;
  hub = spawn_hub(sys, cfg_limited, presence, st);
  auto [first, first_log] = recover(7, std::nullopt);
  route_n(7, 3);
  CHECK(std::get<0>(recover(7, stream_position{first.position->epoch, 0})).recovered ==
        false);
  auto [info, log] = recover(7, stream_position{first.position->epoch, 1});
  CHECK(info.recovered == true);
  CHECK(offsets_of(log->delivered) == offsets{2, 3});
}

TEST_CASE_FIXTURE(hub_streams_fixture, "hub: a stream expires ttl after the user left") {
  auto [conn, log] = join(7);
  route_n(7, 1);
  auto [info, ignored] = recover(7, std::nullopt);
  kill(conn);
  // Still there: the second connection holds it.
  advance(cfg.history_ttl + 1s);
  CHECK(std::get<0>(recover(7, stream_position{info.position->epoch, 0})).recovered ==
        true);
}

TEST_CASE_FIXTURE(hub_streams_fixture, "hub: an expired stream starts a new epoch") {
  auto conn = spawn_probe(std::make_shared<probe_log>());
  auto info = std::get<1>(register_as(7, conn));
  route_n(7, 1);
  kill(conn);
  advance(cfg.history_ttl + 1s);
  auto [again, log] = recover(7, stream_position{info.position->epoch, 0});
  CHECK(again.recovered == false);
  CHECK(again.position->epoch != info.position->epoch);
  CHECK(again.position->offset == 0);
}

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: the cluster welcome carries the stream's position from Redis") {
  log->answers.push_back(read_at("E-9", 4));
  auto conn = spawn_probe(std::make_shared<probe_log>());
  auto [verdict, info] = register_as(7, conn);
  CHECK(verdict == admission::admitted);
  REQUIRE(info.position);
  CHECK(info.position->epoch == "E-9");
  CHECK(info.position->offset == 4);
  CHECK_FALSE(info.recovered);
  REQUIRE(log->reads.size() == 1);
  CHECK_FALSE(log->reads[0].after);
  CHECK(log->reads[0].count == 0);
}

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: a cluster recovery replays the missed entries before the "
                  "answer") {
  log->answers.push_back(read_at("E", 4, {2, 3, 4}));
  auto conn_log = std::make_shared<probe_log>();
  auto conn = spawn_probe(conn_log);
  auto [verdict, info] = register_as(7, conn, stream_position{"E", 1});
  CHECK(info.recovered == true);
  CHECK(info.position->offset == 4);
  REQUIRE(log->reads.size() == 1);
  CHECK(log->reads[0].after == 1u);
  CHECK(log->reads[0].count == cfg.recover_limit);
  CHECK(offsets_of(conn_log->delivered) == offsets{2, 3, 4});
  feed(5);
  CHECK(offsets_of(conn_log->delivered) == offsets{2, 3, 4, 5});
  CHECK(st.recovered == 1);
}

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: a cluster recovery from another epoch replays nothing") {
  log->answers.push_back(read_at("E", 4));
  auto conn_log = std::make_shared<probe_log>();
  auto conn = spawn_probe(conn_log);
  auto [verdict, info] = register_as(7, conn, stream_position{"old", 1});
  CHECK(info.recovered == false);
  CHECK(info.position->offset == 4);
  CHECK(conn_log->delivered.empty());
  feed(5);
  CHECK(offsets_of(conn_log->delivered) == offsets{5});
  CHECK(st.not_recovered == 1);
}

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: an entry of the feed during the welcome's read comes after "
                  "the replay, once") {
  log->hold_reads = true;
  auto conn_log = std::make_shared<probe_log>();
  auto conn = spawn_probe(conn_log);
  auto answer = std::make_shared<std::optional<welcome_info>>();
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(hub, caf::infinite, register_atom::value, user_id{7}, conn,
                  recovery_request{stream_position{"E", 1}})
        .then([answer](admission, const welcome_info& info) { answer->emplace(info); });
  });
  run();
  REQUIRE(log->held.size() == 1);
  // Appended before the read (so in its replay too) and after it.
  feed(3);
  feed(4);
  CHECK(conn_log->delivered.empty());
  CHECK_FALSE(answer->has_value());
  send(cluster, release_atom::value, std::size_t{0}, read_at("E", 3, {2, 3}));
  REQUIRE(answer->has_value());
  CHECK((*answer)->recovered == true);
  CHECK((*answer)->position->offset == 3);
  CHECK(offsets_of(conn_log->delivered) == offsets{2, 3, 4});
}

TEST_CASE_FIXTURE(hub_cluster_fixture,
                  "hub: a gap in the feed reads the missed entries again") {
  auto [conn, conn_log] = join(7);
  log->answers.push_back(read_at("E", 3, {1, 2, 3}));
  feed(3);
  REQUIRE(log->reads.size() == 2);
  CHECK(log->reads[1].after == 0u);
  CHECK(offsets_of(conn_log->delivered) == offsets{1, 2, 3});
}
