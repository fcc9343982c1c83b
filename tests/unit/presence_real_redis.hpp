// Fixtures of the presence tests against a real redis-server: the scripts
// run through redis_connection, the client the redis actor uses (EVALSCRIPT
// as EVALSHA); the actor tests run the real redis actor on a real scheduler
// and poll Redis with a bound.
#pragma once

#include "src/base/log.hpp"

#include "actors/redis_commands.hpp"
#include "src/redis/commands.hpp"
#include "src/redis/presence_scripts.hpp"
#include "src/redis/subscriber.hpp"
#include "tests/unit/presence_fixture.hpp"
#include "tests/unit/real_system.hpp"
#include "tests/unit/redis_server.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "caf/scoped_actor.hpp"

namespace hubnode::test {

using clock_type = std::chrono::steady_clock;

inline std::int64_t script_result(const redis_result& result) {
  REQUIRE_MESSAGE(result.ok(), result.error);
  REQUIRE(result.replies.size() == 1);
  REQUIRE_MESSAGE(!result.replies[0].is_error(), result.replies[0].str);
  return result.replies[0].integer;
}

inline std::string ev(user_id user, bool online, std::string_view node) {
  return presence_event(user, online, node, 1);
}

struct real_redis {
  redis_server server;
  redis_keys keys{"rp:"};
  redis_connection conn;
  redis_subscription sub;
  // Every event seen on P`presence`, parsed.
  std::vector<boost::json::object> seen;

  real_redis() {
    REQUIRE(server.running());
    conn = new_connection();
    REQUIRE(sub.connect(server.endpoint(), 1s, 1s).empty());
    REQUIRE(sub.subscribe({keys.channel}));
    REQUIRE(eventually(
        [this] {
          sub.poll(10ms);
          return sub.confirmed() == 1;
        },
        3000ms));
  }

  redis_connection new_connection() {
    redis_connection result;
    auto why = result.connect(server.endpoint(), 1s, 1s);
    REQUIRE_MESSAGE(why.empty(), why);
    return result;
  }

  redis_reply one(const redis_command& cmd) {
    auto result = conn.run({cmd});
    REQUIRE_MESSAGE(result.ok(), result.error);
    return result.replies.at(0);
  }

  std::int64_t script(const redis_command& cmd) { return script_result(conn.run({cmd})); }

  bool member(user_id user) {
    return one({"SISMEMBER", keys.online, std::to_string(user)}).integer == 1;
  }

  strings fields(user_id user) {
    strings result;
    for (auto& element : one({"HGETALL", keys.user(user)}).elements)
      result.push_back(element.str);
    return result;
  }

  // The dead n3 holds users 1..`users`, those above `only_n3` also on the
  // live n4. The online events of this setup are not kept in `seen`.
  void dead_node_holding(user_id users, user_id only_n3) {
    using namespace presence_scripts;
    redis_pipeline setup{{"SADD", keys.nodes, "n3", "n4"},
                         {"SET", keys.node("n4"), "1", "PX", "60000"}};
    for (user_id user = 1; user <= users; ++user) {
      setup.push_back(connect(keys, user, "n3", 1, ev(user, true, "n3")));
      if (user > only_n3)
        setup.push_back(connect(keys, user, "n4", 1, ev(user, true, "n4")));
    }
    REQUIRE(conn.run(setup).ok());
    events();
    seen.clear();
  }

  // Events up to now, and those arriving within `window`.
  const std::vector<boost::json::object>&
  events(std::chrono::milliseconds window = 100ms) {
    auto deadline = clock_type::now() + window;
    do {
      for (auto& message : sub.poll(10ms))
        seen.push_back(event_of(message.second));
    } while (clock_type::now() < deadline);
    return seen;
  }

  // (user, online, node) of every event so far.
  std::vector<std::tuple<std::string, bool, std::string>>
  transitions(std::chrono::milliseconds window = 100ms) {
    std::vector<std::tuple<std::string, bool, std::string>> result;
    for (auto& ev : events(window))
      result.emplace_back(text_of(ev.at("userId")), ev.at("online").as_bool(),
                          text_of(ev.at("node")));
    return result;
  }
};

using transition = std::tuple<std::string, bool, std::string>;
using transition_list = std::vector<transition>;

// Presence actors of several nodes with the real redis actor, on a real
// scheduler: heartbeats every 50 ms, a node dead after 300 ms of silence.
// real_redis first: its server outlives the actor system.
struct real_cluster : real_redis, real_system {
  presence_actor node(std::string id, stats& st) {
    redis_settings rcfg;
    rcfg.endpoint = server.endpoint();
    rcfg.key_prefix = keys.prefix;
    rcfg.node_id = id;
    rcfg.connect_timeout = 500ms;
    rcfg.command_timeout = 500ms;
    rcfg.backoff_max = 200ms;
    auto redis = spawn_redis(sys, rcfg, st);
    auto pcfg = presence_with_grace(100ms);
    pcfg.node_id = std::move(id);
    pcfg.key_prefix = keys.prefix;
    pcfg.heartbeat_interval = 50ms;
    pcfg.node_ttl = 300ms;
    auto presence = spawn_presence(sys, pcfg, st, redis);
    caf::anon_send(redis, listen_atom::value, caf::actor_cast<redis_listener>(presence));
    spawned.push_back(caf::actor_cast<caf::actor>(presence));
    spawned.push_back(caf::actor_cast<caf::actor>(redis));
    return presence;
  }

  bool withdraw(const presence_actor& presence) {
    caf::scoped_actor self{sys};
    bool result = false;
    self->request(presence, 3s, withdraw_atom::value)
        .receive([&](bool done) { result = done; },
                 [](caf::error& err) { FAIL("withdraw failed: " << to_string(err)); });
    return result;
  }
};

} // namespace hubnode::test
