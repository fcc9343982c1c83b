#include "src/base/log.hpp"

// Watch, unwatch, the limit per connection, and who hears of a transition:
// standalone from presence itself, in cluster mode from the events only.

#include "tests/unit/presence_fixture.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

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

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: watchers hear of transitions from events only, "
                  "once each") {
  started();
  auto other_log = std::make_shared<probe_log>();
  auto other = spawn_probe(other_log);
  send(presence, watch_atom::value, watcher, user_list{7});
  send(presence, watch_atom::value, other, user_list{7, 8});
  connected(7);
  advance(1s);
  CHECK(watcher_log->changes.empty());
  event(7, true);
  event(8, true);
  event(9, false);
  event(7, false);
  CHECK(watcher_log->changes == changes{{7, true}, {7, false}});
  CHECK(other_log->changes == changes{{7, true}, {8, true}, {7, false}});
}
