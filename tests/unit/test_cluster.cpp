#include "src/base/log.hpp"

#include "actors/cluster.hpp"
#include "actors/hub.hpp"
#include "src/redis/stream_scripts.hpp"
#include "tests/unit/actor_fixture.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;

// What the stand-ins for Redis, the subscriber and presence were asked.
struct redis_log {
  std::vector<redis_pipeline> pipelines;
  // The next answers, or an error when empty.
  std::vector<redis_replies> answers;
  std::vector<strings> subscribed;
  std::vector<strings> unsubscribed;
  std::vector<std::pair<user_id, bool>> events;
  // Subscribe requests the stand-in subscriber holds instead of confirming
  // them at once.
  bool hold = false;
  std::vector<caf::typed_response_promise<bool>> held;
};

redis_reply integer(std::int64_t value) {
  redis_reply result;
  result.type = redis_reply::kind::integer;
  result.integer = value;
  return result;
}

redis_reply text(std::string value) {
  redis_reply result;
  result.type = redis_reply::kind::string;
  result.str = std::move(value);
  return result;
}

redis_reply array(std::vector<redis_reply> elements) {
  redis_reply result;
  result.type = redis_reply::kind::array;
  result.elements = std::move(elements);
  return result;
}

// A frame as the hub publishes it: the append script writes its offset.
const std::string message = R"({"type":"message","offset":0,"data":1})";

// The append script's reply: {offset, epoch, receivers}.
redis_reply appended(std::int64_t offset, std::int64_t receivers) {
  return array({integer(offset), text("E"), integer(receivers)});
}

// The read script's reply: {epoch, top, id, frame, ...}.
redis_reply read_reply(std::int64_t top) {
  return array({text("E"), integer(top)});
}

redis_actor::behavior_type fake_redis(redis_actor::pointer,
                                      std::shared_ptr<redis_log> log) {
  return {
      [log](redis_atom, const redis_pipeline& pipeline) -> caf::result<redis_replies> {
        log->pipelines.push_back(pipeline);
        if (log->answers.empty())
          return caf::make_error(caf::sec::request_timeout);
        auto answer = log->answers.front();
        log->answers.erase(log->answers.begin());
        return answer;
      },
      [](listen_atom, const redis_listener&) {},
  };
}

// The test's word that Redis confirmed (true) or failed the i-th held
// subscribe request: promises are delivered from inside their actor.
using confirm_atom = caf::atom_constant<caf::atom("confirm")>;
using fake_subscriber_actor =
    subscriber_actor::extend<caf::reacts_to<confirm_atom, std::size_t, bool>>;

fake_subscriber_actor::behavior_type fake_subscriber(fake_subscriber_actor::pointer self,
                                                     std::shared_ptr<redis_log> log) {
  return {
      [self, log](subscribe_atom, const strings& channels) -> caf::result<bool> {
        log->subscribed.push_back(channels);
        if (!log->hold)
          return true;
        auto rp = self->make_response_promise<bool>();
        log->held.push_back(rp);
        return rp;
      },
      [log](unsub_atom, const strings& channels) {
        log->unsubscribed.push_back(channels);
      },
      [log](confirm_atom, std::size_t i, bool ok) {
        // Moved out, so that no promise keeps its actor alive.
        auto rp = std::move(log->held.at(i));
        rp.deliver(ok);
      },
  };
}

// Untyped, so that it stays valid whatever else presence learns: it answers
// what the hub asks and records the events the cluster forwards.
caf::behavior fake_presence(caf::event_based_actor*, std::shared_ptr<redis_log> log) {
  return {
      [](connected_atom, user_id) {},
      [](disconn_atom, user_id) {},
      [](online_atom, user_id) { return false; },
      [log](event_atom, user_id user, bool online) {
        log->events.emplace_back(user, online);
      },
  };
}

struct cluster_fixture : actor_fixture {
  std::shared_ptr<redis_log> log = std::make_shared<redis_log>();
  redis_settings cfg = make_settings();
  presence_actor presence =
      caf::actor_cast<presence_actor>(sys.spawn(fake_presence, log));
  hub_actor hub = spawn_hub(sys, make_hub_settings(node_options{}), presence, st);
  redis_actor redis = sys.spawn(fake_redis, log);
  fake_subscriber_actor subscriber;
  cluster_actor cluster = spawn();

  // The tests that hand the hub this cluster make a cycle of handles
  // (hub -> cluster -> hub): both end here so that neither outlives the test.
  ~cluster_fixture() {
    caf::anon_send_exit(hub, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(cluster, caf::exit_reason::user_shutdown);
    run();
  }

  static redis_settings make_settings() {
    redis_settings result;
    result.node_id = "n1";
    result.key_prefix = "hp:";
    return result;
  }

  cluster_actor spawn() {
    auto log_copy = log;
    auto result =
        spawn_cluster(sys, cfg, make_hub_settings(node_options{}), hub, presence, redis,
                      st, [this, log_copy](caf::actor, strings channels) {
                        log_copy->subscribed.push_back(std::move(channels));
                        subscriber = sys.spawn(fake_subscriber, log_copy);
                        return subscriber;
                      });
    run();
    return result;
  }

  std::optional<bool> publish(user_id user, std::string frame) {
    auto reply = request<bool, bool>(cluster, publish_atom::value, user,
                                     make_payload(std::move(frame)));
    if (!reply->has_value())
      return std::nullopt;
    return std::get<1>(**reply);
  }

  std::shared_ptr<probe_log> join(user_id user) {
    auto conn_log = std::make_shared<probe_log>();
    auto conn = spawn_probe(conn_log);
    auto reply = request<admission, welcome_info>(hub, register_atom::value, user, conn,
                                                  recovery_request{});
    REQUIRE(reply->has_value());
    REQUIRE(std::get<0>(**reply) == admission::admitted);
    return conn_log;
  }

  // A subscribe request of the hub's; its answer once there is one.
  answer<bool> subscribe(user_id user) {
    auto result = std::make_shared<std::optional<std::tuple<bool>>>();
    sys.spawn([=](caf::event_based_actor* self) {
      self->request(cluster, caf::infinite, subscribe_atom::value, user)
          .then([result](bool ok) { result->emplace(ok); },
                [](caf::error& err) { FAIL("subscribe failed: " << to_string(err)); });
    });
    run();
    return result;
  }

  void confirm(std::size_t i, bool ok) {
    REQUIRE(i < log->held.size());
    send(subscriber, confirm_atom::value, i, ok);
  }

  void remote(std::string channel, std::string message) {
    send(cluster, remote_atom::value, std::move(channel), std::move(message));
  }
};

} // namespace

TEST_CASE("cluster: the wire format of a stream entry") {
  auto entry = stream_scripts::parse_published("E-1\n7\n{\"a\":\"x\ny\"}");
  REQUIRE(entry);
  CHECK(entry->epoch == "E-1");
  CHECK(entry->entry.offset == 7);
  // the frame may hold raw newlines too: only the first two separate
  CHECK(*entry->entry.frame == "{\"a\":\"x\ny\"}");
  CHECK_FALSE(stream_scripts::parse_published("no separator"));
  CHECK_FALSE(stream_scripts::parse_published("\n1\n{}"));
  CHECK_FALSE(stream_scripts::parse_published("E\nx\n{}"));
  CHECK_FALSE(stream_scripts::parse_published("E\n1\n"));
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "cluster: subscribes to the presence channel at start") {
  CHECK(log->subscribed == std::vector<strings>{{"hp:presence"}});
}

TEST_CASE_FIXTURE(cluster_fixture, "cluster: user subscriptions are idempotent") {
  send(cluster, subscribe_atom::value, user_id{7});
  send(cluster, subscribe_atom::value, user_id{7});
  send(cluster, subscribe_atom::value, user_id{8});
  CHECK(log->subscribed ==
        std::vector<strings>{{"hp:presence"}, {"hp:user:7"}, {"hp:user:8"}});
  send(cluster, unsub_atom::value, user_id{7});
  send(cluster, unsub_atom::value, user_id{7});
  send(cluster, unsub_atom::value, user_id{9});
  CHECK(log->unsubscribed == std::vector<strings>{{"hp:user:7"}});
  send(cluster, subscribe_atom::value, user_id{7});
  CHECK(log->subscribed.back() == strings{"hp:user:7"});
  CHECK(log->subscribed.size() == 4);
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "cluster: a subscribe is answered once the subscriber confirmed it") {
  log->hold = true;
  auto first = subscribe(7);
  auto second = subscribe(7); // a second connection while the first waits
  CHECK_FALSE(first->has_value());
  CHECK_FALSE(second->has_value());
  REQUIRE(log->held.size() == 1); // one request to the subscriber for both
  confirm(0, true);
  CHECK(*first == std::make_tuple(true));
  CHECK(*second == std::make_tuple(true));
  // Subscribed already: answered at once, the subscriber is not asked.
  CHECK(*subscribe(7) == std::make_tuple(true));
  CHECK(log->held.size() == 1);
}

TEST_CASE_FIXTURE(
    cluster_fixture,
    "cluster: a subscribe while Redis is down is answered false, then asked "
    "again") {
  log->hold = true;
  auto first = subscribe(7);
  confirm(0, false);
  CHECK(*first == std::make_tuple(false));
  auto second = subscribe(7);
  REQUIRE(log->held.size() == 2);
  confirm(1, true);
  CHECK(*second == std::make_tuple(true));
  // A broken pub/sub connection loses the subscription until Redis confirms
  // it again.
  send(cluster, redis_state_atom::value, false);
  auto third = subscribe(7);
  CHECK_FALSE(third->has_value());
  REQUIRE(log->held.size() == 3);
  confirm(2, true);
  CHECK(*third == std::make_tuple(true));
  // No SUBSCRIBE twice: the subscriber knows the channel already.
  CHECK(log->unsubscribed.empty());
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "cluster: an answer for a user unsubscribed meanwhile is old news") {
  log->hold = true;
  auto gone = subscribe(7);
  send(cluster, unsub_atom::value, user_id{7});
  CHECK(*gone == std::make_tuple(false));
  auto again = subscribe(7);
  REQUIRE(log->held.size() == 2);
  confirm(0, true); // the confirmation of the first SUBSCRIBE
  CHECK_FALSE(again->has_value());
  confirm(1, true);
  CHECK(*again == std::make_tuple(true));
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "cluster: publish is one pipeline of the append script and "
                  "SISMEMBER") {
  log->answers.push_back({appended(1, 1), integer(0)});
  CHECK(publish(42, message) == true);
  REQUIRE(log->pipelines.size() == 1);
  auto& pipeline = log->pipelines[0];
  REQUIRE(pipeline.size() == 2);
  auto& append = pipeline[0];
  REQUIRE(append.size() == 11);
  CHECK(append[0] == "EVALSCRIPT");
  CHECK(append[1] == stream_scripts::append_lua);
  CHECK(strings(append.begin() + 2, append.begin() + 5) ==
        strings{"2", "hp:{u:42}:log", "hp:{u:42}:meta"});
  // a new epoch of this node's, should the stream have none
  CHECK(append[5].rfind("n1-", 0) == 0);
  // the frame around its offset, which the script writes in
  CHECK(append[6] + "7" + append[7] == R"({"type":"message","offset":7,"data":1})");
  CHECK(append[8] == std::to_string(make_hub_settings(node_options{}).history_user_size));
  CHECK(append[10] == "hp:user:42");
  CHECK(pipeline[1] == redis_command{"SISMEMBER", "hp:online", "42"});
  CHECK(st.messages_remote == 1);
  CHECK(st.messages_dropped[static_cast<int>(drop_reason::redis_down)] == 0);
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "cluster: publish answers online from the receivers or P`online`") {
  log->answers.push_back({appended(1, 0), integer(0)});
  CHECK(publish(42, message) == false);
  log->answers.push_back({appended(2, 0), integer(1)});
  CHECK(publish(42, message) == true);
  log->answers.push_back({appended(3, 3), integer(0)});
  CHECK(publish(42, message) == true);
  CHECK(st.messages_remote == 3);
}

TEST_CASE_FIXTURE(cluster_fixture, "cluster: this node is no receiver of its own") {
  send(cluster, subscribe_atom::value, user_id{42});
  // the only receiver is this node's own subscription
  log->answers.push_back({appended(1, 1), integer(0)});
  CHECK(publish(42, message) == false);
  log->answers.push_back({appended(2, 2), integer(0)});
  CHECK(publish(42, message) == true);
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "cluster: a failed append is a drop, answered not stored") {
  auto stored = [&] {
    auto reply = request<bool, bool>(cluster, publish_atom::value, user_id{42},
                                     make_payload(message));
    REQUIRE(reply->has_value());
    CHECK_FALSE(std::get<1>(**reply));
    return std::get<0>(**reply);
  };
  redis_reply err;
  err.type = redis_reply::kind::error;
  err.str = "LOADING";
  CHECK_FALSE(stored()); // the fake answers an error when it has no answer
  log->answers.push_back({err, integer(1)});
  CHECK_FALSE(stored());
  CHECK(log->pipelines.size() == 2);
  CHECK(st.messages_remote == 0);
  CHECK(st.messages_dropped[static_cast<int>(drop_reason::redis_down)] == 2);
}

TEST_CASE_FIXTURE(
    cluster_fixture,
    "cluster: publishes and reads during a round trip share the next pipeline, in "
    "order") {
  log->answers.push_back({appended(1, 1), integer(1)});
  log->answers.push_back(
      {appended(2, 1), integer(1), read_reply(2), appended(3, 0), integer(0)});
  std::vector<std::optional<bool>> online(3);
  std::optional<std::uint64_t> top;
  // All four are in the cluster's mailbox before it runs.
  auto publish_one = [&](int i) {
    sys.spawn([&online, i, this](caf::event_based_actor* asker) {
      asker
          ->request(cluster, caf::infinite, publish_atom::value, user_id{42},
                    make_payload(R"({"offset":0,"n":)" + std::to_string(i) + "}"))
          .then([&online, i](bool, bool answer) { online[i] = answer; },
                [](caf::error& err) { FAIL(to_string(err)); });
    });
  };
  publish_one(0);
  publish_one(1);
  sys.spawn([&top, this](caf::event_based_actor* asker) {
    asker->request(cluster, caf::infinite, read_atom::value, user_id{42}, read_request{})
        .then([&top](const stream_read& read) { top = read.top.offset; },
              [](caf::error& err) { FAIL(to_string(err)); });
  });
  publish_one(2);
  run();
  REQUIRE(log->pipelines.size() == 2);
  REQUIRE(log->pipelines[0].size() == 2);
  CHECK(log->pipelines[0][0][6] == R"({"offset":)");
  CHECK(log->pipelines[0][0][7] == R"(,"n":0})");
  REQUIRE(log->pipelines[1].size() == 5);
  CHECK(log->pipelines[1][0][7] == R"(,"n":1})");
  CHECK(log->pipelines[1][1][0] == "SISMEMBER");
  CHECK(log->pipelines[1][2][1] == stream_scripts::read_lua);
  CHECK(log->pipelines[1][3][7] == R"(,"n":2})");
  CHECK(online == std::vector<std::optional<bool>>{true, true, false});
  CHECK(top == 2u);
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "cluster: an entry from another node reaches the hub with its epoch "
                  "and offset") {
  send(hub, cluster_atom::value, cluster);
  log->answers.push_back({read_reply(0)}); // the welcome's read
  auto conn = join(7);
  remote("hp:user:7", "E\n1\n{\"type\":\"message\",\"offset\":1}");
  remote("hp:user:7", "E\n1\n{\"type\":\"message\",\"offset\":1}"); // once only
  remote("hp:user:7", "E\n2\n{\"type\":\"message\",\"offset\":2}");
  REQUIRE(conn->delivered.size() == 2);
  CHECK(*conn->delivered[0] == "{\"type\":\"message\",\"offset\":1}");
  CHECK(*conn->delivered[1] == "{\"type\":\"message\",\"offset\":2}");
  CHECK(st.messages_delivered == 2);
}

TEST_CASE_FIXTURE(cluster_fixture, "cluster: malformed user messages are dropped") {
  send(hub, cluster_atom::value, cluster);
  log->answers.push_back({read_reply(0)});
  auto conn = join(7);
  remote("hp:user:7", "no separator");
  remote("hp:user:7", "E\n{}");
  remote("hp:user:7", "E\nx\n{}");
  remote("hp:user:x7", "E\n1\n{}");
  remote("hp:user:", "E\n1\n{}");
  remote("hp:user:7", "\n1\n{}");
  remote("other:user:7", "E\n1\n{}");
  CHECK(conn->delivered.empty());
}

TEST_CASE_FIXTURE(cluster_fixture, "cluster: presence events reach presence") {
  remote("hp:presence", R"({"userId":"7","online":true,"node":"n2","ts":1})");
  remote("hp:presence", R"({"userId":"8","online":false,"node":"n1","ts":2})");
  CHECK(log->events == std::vector<std::pair<user_id, bool>>{{7, true}, {8, false}});
}

TEST_CASE_FIXTURE(cluster_fixture, "cluster: malformed presence events are dropped") {
  remote("hp:presence", "not json");
  remote("hp:presence", "[1]");
  remote("hp:presence", R"({"userId":7,"online":true})");
  remote("hp:presence", R"({"userId":"x","online":true})");
  remote("hp:presence", R"({"userId":"7","online":"yes"})");
  remote("hp:presence", R"({"online":true})");
  CHECK(log->events.empty());
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "cluster: the pub/sub link back makes the hub read what it missed") {
  send(hub, cluster_atom::value, cluster);
  log->answers.push_back({read_reply(0)}); // the welcome's read
  auto conn = join(7);
  send(cluster, redis_state_atom::value, false);
  CHECK(log->pipelines.size() == 1);
  log->answers.push_back(
      {array({text("E"), integer(1), integer(1), text("{\"offset\":1}")})});
  send(cluster, redis_state_atom::value, true);
  REQUIRE(log->pipelines.size() == 2);
  auto& read = log->pipelines[1].at(0);
  CHECK(read[1] == stream_scripts::read_lua);
  CHECK(read[3] == "hp:{u:7}:log");
  CHECK(read[7] == "0"); // after the connection's last offset
  REQUIRE(conn->delivered.size() == 1);
  CHECK(*conn->delivered[0] == "{\"offset\":1}");
  // The subscriber subscribes again by itself: nothing asked of it.
  CHECK(log->subscribed.size() == 2);
}

TEST_CASE_FIXTURE(cluster_fixture, "cluster: its subscriber ends with it") {
  caf::actor sub;
  auto other = spawn_cluster(sys, cfg, make_hub_settings(node_options{}), hub, presence,
                             redis, st, [&](caf::actor, strings) {
                               auto result = sys.spawn(fake_subscriber, log);
                               sub = caf::actor_cast<caf::actor>(result);
                               return result;
                             });
  run();
  REQUIRE(sub);
  auto gone = std::make_shared<bool>(false);
  sub->attach_functor([gone] { *gone = true; });
  caf::anon_send_exit(other, caf::exit_reason::user_shutdown);
  run();
  CHECK(*gone);
}
