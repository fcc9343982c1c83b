#include "src/base/log.hpp"

#include "actors/presence.hpp"
#include "tests/unit/actor_fixture.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using change = std::pair<user_id, bool>;
using changes = std::vector<change>;

struct presence_fixture : actor_fixture {
  presence_settings cfg = presence_with_grace(100ms);
  presence_actor presence = spawn_presence(sys, cfg, st);
  std::shared_ptr<probe_log> watcher_log = std::make_shared<probe_log>();
  connection_actor watcher = spawn_probe(watcher_log);

  bool online(user_id user) {
    auto reply = request<bool>(presence, online_atom::value, user);
    REQUIRE(reply->has_value());
    return std::get<0>(**reply);
  }

  std::tuple<bool, std::uint64_t> count(user_id user) {
    auto reply = request<bool, std::uint64_t>(presence, count_atom::value, user);
    REQUIRE(reply->has_value());
    return **reply;
  }

  void connected(user_id user) { send(presence, connected_atom::value, user); }
  void disconnected(user_id user) { send(presence, disconn_atom::value, user); }
  void watch(user_list users) { send(presence, watch_atom::value, watcher, users); }
};

} // namespace

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

TEST_CASE_FIXTURE(presence_fixture,
                  "presence: query answers the online subset in order") {
  connected(3);
  connected(1);
  auto reply = request<user_list>(presence, query_atom::value, user_list{1, 2, 3});
  REQUIRE(reply->has_value());
  CHECK(std::get<0>(**reply) == user_list{1, 3});
}

TEST_CASE_FIXTURE(presence_fixture, "presence: watchers see only the users they watch") {
  watch({7, 8});
  send(presence, unwatch_atom::value, watcher, user_list{8});
  connected(7);
  connected(8);
  connected(9);
  CHECK(watcher_log->changes == changes{{7, true}});
}

TEST_CASE_FIXTURE(presence_fixture, "presence: every watcher is told") {
  auto other_log = std::make_shared<probe_log>();
  auto other = spawn_probe(other_log);
  watch({7});
  send(presence, watch_atom::value, other, user_list{7});
  connected(7);
  CHECK(watcher_log->changes == changes{{7, true}});
  CHECK(other_log->changes == changes{{7, true}});
}

TEST_CASE_FIXTURE(presence_fixture,
                  "presence: a watch over max-watched is refused as a whole") {
  cfg.max_watched = 3;
  presence = spawn_presence(sys, cfg, st);
  auto ask = [&](user_list users) {
    auto reply = request<std::string>(presence, watch_atom::value, watcher, users);
    REQUIRE(reply->has_value());
    return std::get<0>(**reply);
  };
  CHECK(ask({1, 2}) == "");
  CHECK(ask({2, 2, 3}) == "");
  CHECK(ask({4}) ==
        "watch list full: at most 3 users per connection, unwatch some first");
  CHECK(ask({1, 3}) == "");
  send(presence, unwatch_atom::value, watcher, user_list{1});
  CHECK(ask({4}) == "");
  for (user_id user : {1, 2, 3, 4})
    connected(user);
  CHECK(watcher_log->changes == changes{{2, true}, {3, true}, {4, true}});
}

// Presence keeps a handle of each watcher; once the watcher is DOWN nothing may
// hold it any more, or every connection that ever watched would leak.
TEST_CASE_FIXTURE(presence_fixture, "presence: a watcher that is gone is forgotten") {
  auto other = spawn_probe(std::make_shared<probe_log>());
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(other);
  send(presence, watch_atom::value, other, user_list{7, 8});
  kill(other);
  other = nullptr;
  run();
  CHECK(weak.lock() == nullptr);
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
