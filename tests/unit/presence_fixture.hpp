// Fixtures of the presence actor's tests: presence standalone, and presence
// in cluster mode against a fake redis actor that records every pipeline and
// answers what the test scripted (CAF's test coordinator, deterministic).
#pragma once

#include "src/base/log.hpp"

#include "actors/presence.hpp"
#include "tests/unit/actor_fixture.hpp"

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace hubnode::test {

using namespace std::chrono_literals;

using strings = std::vector<std::string>;
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

using answer_fn = std::function<redis_reply(const redis_command&)>;

inline redis_reply integer(std::int64_t value) {
  redis_reply result;
  result.type = redis_reply::kind::integer;
  result.integer = value;
  return result;
}

inline redis_reply bulk(std::string text) {
  redis_reply result;
  result.type = redis_reply::kind::string;
  result.str = std::move(text);
  return result;
}

inline redis_reply array(std::vector<redis_reply> elements) {
  redis_reply result;
  result.type = redis_reply::kind::array;
  result.elements = std::move(elements);
  return result;
}

inline redis_reply bulks(const strings& texts) {
  std::vector<redis_reply> elements;
  for (auto& text : texts)
    elements.push_back(bulk(text));
  return array(std::move(elements));
}

// SCAN's reply: the next cursor and the keys of this step.
inline redis_reply scan_reply(std::string cursor, const strings& keys) {
  return array({bulk(std::move(cursor)), bulks(keys)});
}

// What Redis would answer when nothing special is going on: scripts make no
// transition, this node is registered, every node is alive, no key matches a
// SCAN.
inline redis_reply default_answer(const redis_command& cmd) {
  auto& name = cmd.at(0);
  if (name == "SET") {
    redis_reply ok;
    ok.type = redis_reply::kind::status;
    ok.str = "OK";
    return ok;
  }
  if (name == "SMEMBERS" || name == "HGETALL")
    return array({});
  if (name == "SCAN")
    return scan_reply("0", {});
  if (name == "SMISMEMBER")
    return array(std::vector<redis_reply>(cmd.size() - 2, integer(0)));
  if (name == "EXISTS" || name == "SREM" || name == "DEL")
    return integer(1);
  return integer(0); // EVALSCRIPT, SISMEMBER, SADD
}

struct redis_log {
  std::vector<redis_pipeline> pipelines;
  // Redis is down: every request fails.
  bool down = false;
  // Redis runs this pipeline, but its answer is lost (a timeout).
  std::function<bool(const redis_pipeline&)> answer_lost;
  // Answers by command name, in place of the default.
  std::map<std::string, answer_fn> answers;
};

inline redis_actor::behavior_type fake_redis(redis_actor::pointer,
                                             std::shared_ptr<redis_log> log) {
  return {
      [log](redis_atom, const redis_pipeline& pipeline) -> caf::result<redis_replies> {
        log->pipelines.push_back(pipeline);
        if (log->down)
          return caf::make_error(caf::sec::request_timeout);
        redis_replies replies;
        for (auto& cmd : pipeline) {
          auto i = log->answers.find(cmd.at(0));
          replies.push_back(i != log->answers.end() ? i->second(cmd)
                                                    : default_answer(cmd));
        }
        if (log->answer_lost && log->answer_lost(pipeline))
          return caf::make_error(caf::sec::request_timeout);
        return replies;
      },
      [](listen_atom, const redis_listener&) {},
  };
}

// One EVALSCRIPT command taken apart.
struct script_call {
  std::string_view lua;
  strings keys;
  strings args;
};

inline script_call script_of(const redis_command& cmd) {
  REQUIRE(cmd.size() >= 3);
  REQUIRE(cmd[0] == "EVALSCRIPT");
  auto numkeys = std::stoul(cmd[2]);
  REQUIRE(cmd.size() >= 3 + numkeys);
  script_call call{cmd[1], {}, {}};
  call.keys.assign(cmd.begin() + 3, cmd.begin() + 3 + numkeys);
  call.args.assign(cmd.begin() + 3 + numkeys, cmd.end());
  return call;
}

inline boost::json::object event_of(const std::string& text) {
  return boost::json::parse(text).as_object();
}

inline std::string text_of(const boost::json::value& value) {
  return boost::json::value_to<std::string>(value);
}

struct presence_cluster_fixture : actor_fixture {
  std::shared_ptr<redis_log> log = std::make_shared<redis_log>();
  redis_actor redis = sys.spawn(fake_redis, log);
  presence_settings cfg = make_settings();
  presence_actor presence;
  std::shared_ptr<probe_log> watcher_log = std::make_shared<probe_log>();
  connection_actor watcher = spawn_probe(watcher_log);

  static presence_settings make_settings() {
    auto result = presence_with_grace(100ms);
    result.node_id = "n1";
    result.key_prefix = "hp:";
    result.heartbeat_interval = 2s;
    result.node_ttl = 10s;
    return result;
  }

  // The start (heartbeat and resync) is left in the log for the tests that
  // look at it; the others clear it.
  void start() {
    presence = spawn_presence(sys, cfg, st, redis);
    run();
  }

  void started() {
    start();
    log->pipelines.clear();
  }

  void answer(const std::string& name, answer_fn fn) {
    log->answers[name] = std::move(fn);
  }

  // P`nodes` as a set that SADD, SREM and SMEMBERS change and read, with
  // `dead` among them and its heartbeat key missing.
  void registry(std::set<std::string> nodes, std::string dead) {
    auto set = std::make_shared<std::set<std::string>>(std::move(nodes));
    answer("SADD", [set](const redis_command& cmd) {
      return integer(set->insert(cmd.at(2)).second ? 1 : 0);
    });
    answer("SREM", [set](const redis_command& cmd) {
      return integer(static_cast<std::int64_t>(set->erase(cmd.at(2))));
    });
    answer("SMEMBERS", [set](auto&) { return bulks({set->begin(), set->end()}); });
    answer("EXISTS", [dead](const redis_command& cmd) {
      return integer(cmd.at(1) == "hp:node:" + dead ? 0 : 1);
    });
  }

  // Started; n2 is dead and had user 5, whose reap makes it go offline.
  void started_with_dead_node() {
    started();
    registry({"n1", "n2"}, "n2");
    answer("SCAN", [](auto&) { return scan_reply("0", {"hp:presence:5"}); });
    answer("EVALSCRIPT", [](auto&) { return integer(1); });
  }

  // The answer to the first pipeline holding `command` is lost.
  void lose_first_answer_to(std::string command) {
    auto lost = std::make_shared<bool>(false);
    log->answer_lost = [lost, command](const redis_pipeline& pipeline) {
      for (auto& cmd : pipeline)
        if (cmd.at(0) == command && !*lost)
          return *lost = true;
      return false;
    };
  }

  // Every command of every pipeline since the last clear, in order.
  std::vector<redis_command> commands() const {
    std::vector<redis_command> result;
    for (auto& pipeline : log->pipelines)
      result.insert(result.end(), pipeline.begin(), pipeline.end());
    return result;
  }

  std::vector<script_call> scripts(std::string_view lua) const {
    std::vector<script_call> result;
    for (auto& cmd : commands())
      if (cmd.at(0) == "EVALSCRIPT" && cmd.at(1) == lua)
        result.push_back(script_of(cmd));
    return result;
  }

  std::vector<redis_command> named(const std::string& name) const {
    std::vector<redis_command> result;
    for (auto& cmd : commands())
      if (cmd.at(0) == name)
        result.push_back(cmd);
    return result;
  }

  void connected(user_id user) { send(presence, connected_atom::value, user); }
  void disconnected(user_id user) { send(presence, disconn_atom::value, user); }
  void event(user_id user, bool online) {
    send(presence, event_atom::value, user, online);
  }
  void redis_state(bool up) { send(presence, redis_state_atom::value, up); }

  bool online(user_id user) {
    auto reply = request<bool>(presence, online_atom::value, user);
    REQUIRE(reply->has_value());
    return std::get<0>(**reply);
  }

  std::optional<bool> withdraw() {
    auto reply = request<bool>(presence, withdraw_atom::value);
    if (!reply->has_value())
      return std::nullopt;
    return std::get<0>(**reply);
  }
};

} // namespace hubnode::test
