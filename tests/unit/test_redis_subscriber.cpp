#include "src/base/log.hpp"

// The pub/sub connection and the subscriber actor against a real
// redis-server.

#include "src/redis/subscriber.hpp"
#include "src/redis/wakeup.hpp"
#include "tests/unit/redis_test_helpers.hpp"

#include <optional>
#include <thread>
#include <tuple>

#include "caf/event_based_actor.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

// -- redis_subscription -------------------------------------------------------

TEST_CASE("redis: a subscription gets messages of its channels only") {
  redis_server server;
  REQUIRE(server.running());
  auto conn = connected(server.endpoint());
  redis_subscription sub;
  REQUIRE(sub.connect(server.endpoint(), 1s, 1s).empty());
  REQUIRE(sub.subscribe({"a", "b"}));
  REQUIRE(sub.requested() == 2);
  REQUIRE(eventually([&] {
    CHECK(sub.poll(10ms).empty());
    return sub.confirmed() == 2;
  }));
  CHECK(run_one(conn, {"PUBLISH", "a", binary_value}).integer == 1);
  std::vector<redis_subscription::message> got;
  REQUIRE(eventually([&] {
    for (auto& message : sub.poll(10ms))
      got.push_back(message);
    return !got.empty();
  }));
  REQUIRE(got.size() == 1);
  CHECK(got[0].first == "a");
  CHECK(got[0].second == binary_value);

  REQUIRE(sub.unsubscribe({"a"}));
  REQUIRE(eventually([&] {
    CHECK(sub.poll(10ms).empty());
    return sub.confirmed() == 3;
  }));
  CHECK(run_one(conn, {"PUBLISH", "a", "lost"}).integer == 0);
  CHECK(run_one(conn, {"PUBLISH", "b", "kept"}).integer == 1);
  got.clear();
  REQUIRE(eventually([&] {
    for (auto& message : sub.poll(10ms))
      got.push_back(message);
    return !got.empty();
  }));
  REQUIRE(got.size() == 1);
  CHECK(got[0].first == "b");
  CHECK(got[0].second == "kept");

  // A burst arrives complete, in order.
  redis_pipeline burst;
  for (int i = 0; i < 500; ++i)
    burst.push_back({"PUBLISH", "b", std::to_string(i) + std::string(200, 'x')});
  run(conn, burst);
  got.clear();
  REQUIRE(eventually([&] {
    for (auto& message : sub.poll(10ms))
      got.push_back(message);
    return got.size() >= 500;
  }));
  CHECK(got.size() == 500);
  CHECK(got[499].second.rfind("499x", 0) == 0);

  server.stop();
  REQUIRE(eventually([&] {
    sub.poll(10ms);
    return !sub.connected();
  }));
  CHECK_FALSE(sub.error().empty());
  CHECK(sub.fd() == -1);
}

TEST_CASE("redis: a wake-up ends a subscription's wait on its socket") {
  redis_server server;
  REQUIRE(server.running());
  redis_subscription sub;
  REQUIRE(sub.connect(server.endpoint(), 1s, 1s).empty());
  poll_wakeup wakeup;
  REQUIRE(wakeup.fd() >= 0);
  auto start = clock_type::now();
  std::thread waker{[&] {
    std::this_thread::sleep_for(50ms);
    wakeup.notify();
  }};
  CHECK(sub.poll(10s, &wakeup).empty());
  waker.join();
  CHECK(clock_type::now() - start < 5s);
  CHECK(sub.connected());
  // Cleared by the wait it ended: the next one waits again.
  start = clock_type::now();
  CHECK(sub.poll(50ms, &wakeup).empty());
  CHECK(clock_type::now() - start >= 40ms);
}

// -- the subscriber actor -----------------------------------------------------

TEST_CASE_FIXTURE(redis_fixture,
                  "redis: the subscriber delivers, unsubscribes, resubscribes") {
  auto conn = connected(server.endpoint());
  auto sub = start_subscriber(settings());
  expect_state(true);
  auto asked = clock_type::now();
  self->send(sub, subscribe_atom::value, std::vector<std::string>{"ch:a", "ch:b"});
  REQUIRE(eventually([&] { return subscribers(conn, "ch:a") == 1; }, 1000ms));
  CHECK(subscribers(conn, "ch:b") == 1);
  CHECK(clock_type::now() - asked < 200ms);
  run_one(conn, {"PUBLISH", "ch:a", binary_value});
  auto got = next_remote();
  CHECK(got.first == "ch:a");
  CHECK(got.second == binary_value);

  self->send(sub, unsub_atom::value, std::vector<std::string>{"ch:a"});
  REQUIRE(eventually([&] { return subscribers(conn, "ch:a") == 0; }, 1000ms));
  run(conn, {{"PUBLISH", "ch:a", "lost"}, {"PUBLISH", "ch:b", "kept"}});
  got = next_remote();
  CHECK(got.first == "ch:b");
  CHECK(got.second == "kept");

  // Redis goes away; meanwhile the node wants one more channel.
  server.stop();
  expect_state(false);
  self->send(sub, subscribe_atom::value, std::vector<std::string>{"ch:c"});
  REQUIRE(server.start());
  expect_state(true);
  // "up" comes after Redis confirmed every channel again.
  REQUIRE(conn.connect(server.endpoint(), 1s, 1s).empty());
  CHECK(subscribers(conn, "ch:a") == 0);
  CHECK(subscribers(conn, "ch:b") == 1);
  CHECK(subscribers(conn, "ch:c") == 1);
  run(conn, {{"PUBLISH", "ch:b", "again"}, {"PUBLISH", "ch:c", "new"}});
  got = next_remote();
  CHECK(got.first == "ch:b");
  CHECK(got.second == "again");
  got = next_remote();
  CHECK(got.first == "ch:c");
  CHECK(got.second == "new");
}

// What a node's /readyz stands on: a ready node hears its channels.
TEST_CASE_FIXTURE(
    redis_fixture,
    "redis: the subscriber says up once its first channels are subscribed") {
  auto conn = connected(server.endpoint());
  start_subscriber(settings(), {"ch:a", "ch:b"});
  expect_state(true);
  CHECK(subscribers(conn, "ch:a") == 1);
  CHECK(subscribers(conn, "ch:b") == 1);
  run_one(conn, {"PUBLISH", "ch:b", "first"});
  auto got = next_remote();
  CHECK(got.first == "ch:b");
  CHECK(got.second == "first");
}

TEST_CASE_FIXTURE(redis_fixture, "redis: the subscriber ends with its sink") {
  caf::actor sink = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](redis_state_atom, bool) {},
            [](remote_atom, const std::string&, const std::string&) {}};
  });
  auto sub = spawn_subscriber(sys, settings(), st, sink, {});
  spawned.push_back(caf::actor_cast<caf::actor>(sub));
  self->monitor(sub);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; }, caf::after(2s) >> [] {});
  CHECK(down);
}

namespace {

// (subscribe, channels) to the subscriber: its answer, and how long it took.
std::pair<std::optional<bool>, clock_type::duration>
ask_subscribe(redis_fixture& f, const subscriber_actor& sub, std::string channel) {
  std::optional<bool> answer;
  auto start = clock_type::now();
  f.self
      ->request(sub, std::chrono::seconds(20), subscribe_atom::value,
                std::vector<std::string>{std::move(channel)})
      .receive([&](bool ok) { answer = ok; },
               [&](caf::error& err) { FAIL("subscribe failed: " << to_string(err)); });
  return {answer, clock_type::now() - start};
}

} // namespace

// The node's welcome waits for this answer (SPEC section 3, "Timing"): a
// subscriber idle in a round on its socket must not hold it for the round.
TEST_CASE_FIXTURE(redis_fixture,
                  "redis: a subscribe is confirmed without waiting for the poll round") {
  auto conn = connected(server.endpoint());
  auto cfg = settings();
  cfg.poll_interval = 10s;
  auto sub = start_subscriber(cfg);
  expect_state(true);
  // Idle now: in a round of up to 10 s on its socket.
  std::this_thread::sleep_for(100ms);
  auto [answer, took] = ask_subscribe(*this, sub, "ch:a");
  CHECK(answer == true);
  CHECK(took < 2s);
  // Confirmed means in effect.
  CHECK(subscribers(conn, "ch:a") == 1);
  // Subscribed already: at once, and still true.
  std::tie(answer, took) = ask_subscribe(*this, sub, "ch:a");
  CHECK(answer == true);
  CHECK(took < 2s);
}

TEST_CASE_FIXTURE(redis_fixture,
                  "redis: a subscribe while Redis is down is answered false") {
  auto sub = start_subscriber(settings());
  expect_state(true);
  server.stop();
  expect_state(false);
  auto [answer, took] = ask_subscribe(*this, sub, "ch:a");
  CHECK(answer == false);
  CHECK(took < 1s);
  REQUIRE(server.start());
  expect_state(true);
  auto conn = connected(server.endpoint());
  CHECK(subscribers(conn, "ch:a") == 1); // subscribed with the others on reconnect
}
