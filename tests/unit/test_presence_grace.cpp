#include "src/base/log.hpp"

// The local truth: online, the grace period, offline, and the hold of a
// grace period that ends while handshakes are pending (standalone, where the
// grace alone decides what watchers hear).

#include "tests/unit/presence_fixture.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

TEST_CASE_FIXTURE(presence_fixture,
                  "presence: first connection is one online transition") {
  watch({7});
  connected(7);
  connected(7);
  CHECK(online(7));
  CHECK(count(7) == std::tuple<bool, std::uint64_t>{true, 2});
  CHECK(st.presence_online == 1);
  CHECK(watcher_log->changes == changes{{7, true}});
}

TEST_CASE_FIXTURE(presence_fixture,
                  "presence: offline exactly once after the grace period") {
  watch({7});
  connected(7);
  disconnected(7);
  advance(99ms);
  CHECK(online(7));
  CHECK(count(7) == std::tuple<bool, std::uint64_t>{true, 0});
  CHECK(st.presence_offline == 0);
  advance(1ms);
  CHECK_FALSE(online(7));
  CHECK(count(7) == std::tuple<bool, std::uint64_t>{false, 0});
  advance(1s);
  CHECK(st.presence_offline == 1);
  CHECK(watcher_log->changes == changes{{7, true}, {7, false}});
}

TEST_CASE_FIXTURE(presence_fixture,
                  "presence: only the last connection starts the grace") {
  connected(7);
  connected(7);
  disconnected(7);
  advance(1s);
  CHECK(online(7));
  CHECK(count(7) == std::tuple<bool, std::uint64_t>{true, 1});
  CHECK(st.presence_offline == 0);
}

TEST_CASE_FIXTURE(presence_fixture,
                  "presence: reconnect within the grace period is no transition") {
  watch({7});
  connected(7);
  disconnected(7);
  advance(50ms);
  connected(7);
  advance(1s);
  CHECK(online(7));
  CHECK(st.reconnects == 1);
  CHECK(st.presence_online == 1);
  CHECK(st.presence_offline == 0);
  CHECK(watcher_log->changes == changes{{7, true}});
}

TEST_CASE_FIXTURE(presence_fixture, "presence: a stale grace timer is ignored") {
  connected(7);
  disconnected(7); // timer for t = 100ms
  advance(50ms);
  connected(7);
  advance(25ms);
  disconnected(7); // timer for t = 175ms; the first is now stale
  advance(50ms);   // t = 125ms: the first timer has fired
  CHECK(online(7));
  CHECK(st.presence_offline == 0);
  send(presence, grace_atom::value, user_id{7}, std::uint64_t{0});
  CHECK(online(7));
  advance(50ms); // t = 175ms
  CHECK_FALSE(online(7));
  CHECK(st.presence_offline == 1);
}

TEST_CASE_FIXTURE(presence_fixture,
                  "presence: a user back after going offline is a new transition") {
  watch({7});
  connected(7);
  disconnected(7);
  advance(100ms);
  connected(7);
  CHECK(st.reconnects == 0);
  CHECK(watcher_log->changes == changes{{7, true}, {7, false}, {7, true}});
}

namespace {

// Presence on a node whose handshakes the test controls.
struct admitting_fixture : presence_fixture {
  std::shared_ptr<bool> behind = std::make_shared<bool>(false);
  presence_actor held = spawn_presence(sys, settings(behind), st);

  static presence_settings settings(std::shared_ptr<bool> behind) {
    auto cfg = presence_with_grace(100ms);
    cfg.admitting = [behind] { return *behind; };
    return cfg;
  }

  // A connection of `user` that opened and closed again.
  void came_and_went(user_id user) {
    send(held, connected_atom::value, user);
    send(held, disconn_atom::value, user);
  }

  bool held_online(user_id user) {
    auto reply = request<bool>(held, online_atom::value, user);
    REQUIRE(reply->has_value());
    return std::get<0>(**reply);
  }
};

} // namespace

TEST_CASE_FIXTURE(admitting_fixture,
                  "presence: a grace period ending during a handshake backlog is held") {
  came_and_went(7);
  *behind = true;
  advance(300ms);
  CHECK(held_online(7));
  CHECK(st.presence_offline == 0);
  // the reconnect was among the handshakes: no transition at all
  send(held, connected_atom::value, user_id{7});
  *behind = false;
  advance(1s);
  CHECK(held_online(7));
  CHECK(st.presence_offline == 0);
  CHECK(st.reconnects == 1);
}

TEST_CASE_FIXTURE(admitting_fixture,
                  "presence: the user goes offline once the backlog is done") {
  came_and_went(7);
  *behind = true;
  advance(200ms);
  CHECK(held_online(7));
  *behind = false;
  advance(10ms); // the next check
  CHECK_FALSE(held_online(7));
  CHECK(st.presence_offline == 1);
}

TEST_CASE_FIXTURE(admitting_fixture, "presence: the hold ends max_hold after the grace") {
  came_and_went(7);
  *behind = true; // a backlog that never clears (a slowloris)
  advance(590ms);
  CHECK(held_online(7));
  advance(20ms); // grace 100 ms + max_hold 500 ms have passed
  CHECK_FALSE(held_online(7));
  CHECK(st.presence_offline == 1);
}

TEST_CASE_FIXTURE(admitting_fixture,
                  "presence: a reconnect queued behind the grace still counts") {
  came_and_went(7);
  // The grace timer fires, and the reconnect's `connected` arrives right
  // behind it, before presence has run: the last check goes behind that.
  sched.advance_time(100ms);
  caf::anon_send(held, connected_atom::value, user_id{7});
  run();
  advance(1s);
  CHECK(held_online(7));
  CHECK(st.presence_offline == 0);
}
