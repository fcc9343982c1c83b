#include "src/base/log.hpp"

// The presence actor in cluster mode: first against a fake redis actor that
// records every pipeline and answers what the test scripted (CAF's test
// coordinator, deterministic), then its scripts and the actor itself against
// a real redis-server.

#include "actors/presence.hpp"
#include "actors/redis_commands.hpp"
#include "src/redis/commands.hpp"
#include "src/redis/presence_scripts.hpp"
#include "src/redis/subscriber.hpp"
#include "tests/unit/actor_fixture.hpp"
#include "tests/unit/real_system.hpp"
#include "tests/unit/redis_server.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "caf/scoped_actor.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;
using change = std::pair<user_id, bool>;
using changes = std::vector<change>;
using answer_fn = std::function<redis_reply(const redis_command&)>;

redis_reply integer(std::int64_t value) {
  redis_reply result;
  result.type = redis_reply::kind::integer;
  result.integer = value;
  return result;
}

redis_reply bulk(std::string text) {
  redis_reply result;
  result.type = redis_reply::kind::string;
  result.str = std::move(text);
  return result;
}

redis_reply array(std::vector<redis_reply> elements) {
  redis_reply result;
  result.type = redis_reply::kind::array;
  result.elements = std::move(elements);
  return result;
}

redis_reply bulks(const strings& texts) {
  std::vector<redis_reply> elements;
  for (auto& text : texts)
    elements.push_back(bulk(text));
  return array(std::move(elements));
}

// SCAN's reply: the next cursor and the keys of this step.
redis_reply scan_reply(std::string cursor, const strings& keys) {
  return array({bulk(std::move(cursor)), bulks(keys)});
}

// What Redis would answer when nothing special is going on: scripts make no
// transition, this node is registered, every node is alive, no key matches a
// SCAN.
redis_reply default_answer(const redis_command& cmd) {
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

redis_actor::behavior_type fake_redis(redis_actor::pointer,
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

script_call script_of(const redis_command& cmd) {
  REQUIRE(cmd.size() >= 3);
  REQUIRE(cmd[0] == "EVALSCRIPT");
  auto numkeys = std::stoul(cmd[2]);
  REQUIRE(cmd.size() >= 3 + numkeys);
  script_call call{cmd[1], {}, {}};
  call.keys.assign(cmd.begin() + 3, cmd.begin() + 3 + numkeys);
  call.args.assign(cmd.begin() + 3 + numkeys, cmd.end());
  return call;
}

boost::json::object event_of(const std::string& text) {
  return boost::json::parse(text).as_object();
}

std::string text_of(const boost::json::value& value) {
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
    presence_settings result;
    result.grace_period = 100ms;
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

using presence_scripts::connect_lua;
using presence_scripts::expire_lua;
using presence_scripts::reap_lua;

} // namespace

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: a connect is one pipeline with the connect script") {
  started();
  answer("EVALSCRIPT", [](auto&) { return integer(1); });
  send(presence, watch_atom::value, watcher, user_list{7});
  connected(7);
  REQUIRE(log->pipelines.size() == 1);
  REQUIRE(log->pipelines[0].size() == 1);
  auto call = script_of(log->pipelines[0][0]);
  CHECK(call.lua == connect_lua);
  CHECK(call.keys == strings{"hp:presence:7", "hp:online"});
  REQUIRE(call.args.size() == 5);
  CHECK(call.args[0] == "n1");
  CHECK(call.args[1] == "1");
  CHECK(call.args[2] == "7");
  CHECK(call.args[3] == "hp:presence");
  auto ev = event_of(call.args[4]);
  CHECK(text_of(ev.at("userId")) == "7");
  CHECK(ev.at("online").as_bool());
  CHECK(text_of(ev.at("node")) == "n1");
  CHECK(ev.at("ts").as_int64() > 0);
  // The script made the transition; watchers wait for its event.
  CHECK(st.presence_online == 1);
  CHECK(watcher_log->changes.empty());
  CHECK(online(7));
  CHECK(log->pipelines.size() == 1); // answered locally
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: writes during a round trip share the next "
                  "pipeline, in order, each with its own reply") {
  started();
  // Only user 8's connect makes a transition.
  answer("EVALSCRIPT", [](const redis_command& cmd) {
    return integer(script_of(cmd).args.at(2) == "8" ? 1 : 0);
  });
  // All three are in presence's mailbox before it runs: the first goes out
  // at once, the other two wait for its reply.
  for (user_id user : {7, 8, 9})
    caf::anon_send(presence, connected_atom::value, user);
  run();
  REQUIRE(log->pipelines.size() == 2);
  REQUIRE(log->pipelines[0].size() == 1);
  CHECK(script_of(log->pipelines[0][0]).args[2] == "7");
  REQUIRE(log->pipelines[1].size() == 2);
  CHECK(script_of(log->pipelines[1][0]).args[2] == "8");
  CHECK(script_of(log->pipelines[1][1]).args[2] == "9");
  CHECK(st.presence_online == 1);
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: a second connection only sets the count") {
  started();
  connected(7);
  connected(7);
  auto calls = scripts(connect_lua);
  REQUIRE(calls.size() == 2);
  CHECK(calls[1].args[1] == "2");
  CHECK(st.presence_online == 0); // the script made no transition
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: the grace expiry runs the expire script once") {
  started();
  connected(7);
  disconnected(7);
  REQUIRE(log->pipelines.size() == 2);
  auto zero = script_of(log->pipelines[1].at(0));
  CHECK(zero.lua == connect_lua);
  CHECK(zero.args[1] == "0"); // the field stays through the grace period
  answer("EVALSCRIPT", [](auto&) { return integer(1); });
  advance(99ms);
  CHECK(scripts(expire_lua).empty());
  advance(1ms);
  auto expired = scripts(expire_lua);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].keys == strings{"hp:presence:7", "hp:online"});
  CHECK(expired[0].args[0] == "n1");
  CHECK(expired[0].args[1] == "7");
  CHECK(expired[0].args[2] == "hp:presence");
  CHECK_FALSE(event_of(expired[0].args[3]).at("online").as_bool());
  CHECK(st.presence_offline == 1);
  advance(1s);
  CHECK(scripts(expire_lua).size() == 1);
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: a reconnect within the grace runs no expire") {
  started();
  connected(7);
  disconnected(7);
  advance(50ms);
  connected(7);
  advance(1s);
  CHECK(scripts(expire_lua).empty());
  CHECK(st.reconnects == 1);
  CHECK(st.presence_offline == 0);
  auto calls = scripts(connect_lua);
  REQUIRE(calls.size() == 3);
  CHECK(calls[2].args[1] == "1");
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: another node's zero keeps the user online") {
  started();
  connected(7);
  disconnected(7);
  // The expire script answers 0: another node still has a field.
  advance(100ms);
  CHECK(scripts(expire_lua).size() == 1);
  CHECK(st.presence_offline == 0);
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

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: the heartbeat refreshes the node key with PX ttl") {
  start();
  REQUIRE_FALSE(log->pipelines.empty());
  // The first pipeline of all: this node is registered before anything else.
  CHECK(log->pipelines[0] == redis_pipeline{{"SET", "hp:node:n1", "1", "PX", "10000"},
                                            {"SADD", "hp:nodes", "n1"},
                                            {"SMEMBERS", "hp:nodes"}});
  log->pipelines.clear();
  advance(1999ms);
  CHECK(named("SET").empty());
  advance(1ms);
  CHECK(named("SET") ==
        std::vector<redis_command>{{"SET", "hp:node:n1", "1", "PX", "10000"}});
  CHECK(named("SADD") == std::vector<redis_command>{{"SADD", "hp:nodes", "n1"}});
  advance(2s);
  CHECK(named("SET").size() == 2);
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: the reaper reaps a dead node it claimed") {
  started();
  answer("SMEMBERS", [](auto&) { return bulks({"n1", "n2", "n3"}); });
  answer("EXISTS", [](const redis_command& cmd) {
    return integer(cmd.at(1) == "hp:node:n2" ? 0 : 1);
  });
  answer("SCAN", [](const redis_command& cmd) {
    return cmd.at(1) == "0" ? scan_reply("17", {"hp:presence:5", "hp:other:1"})
                            : scan_reply("0", {"hp:presence:6"});
  });
  answer("EVALSCRIPT", [](auto&) { return integer(1); });
  advance(2s);
  // Only the other nodes are looked at, in one pipeline.
  CHECK(named("EXISTS") ==
        std::vector<redis_command>{{"EXISTS", "hp:node:n2"}, {"EXISTS", "hp:node:n3"}});
  CHECK(named("SREM") == std::vector<redis_command>{{"SREM", "hp:nodes", "n2"}});
  CHECK(named("SCAN").size() == 2);
  auto reaped = scripts(reap_lua);
  REQUIRE(reaped.size() == 2);
  CHECK(reaped[0].keys == strings{"hp:presence:5", "hp:online", "hp:node:n2"});
  CHECK(reaped[0].args[0] == "n2");
  CHECK(reaped[0].args[1] == "5");
  CHECK(reaped[1].keys == strings{"hp:presence:6", "hp:online", "hp:node:n2"});
  auto ev = event_of(reaped[0].args[3]);
  CHECK_FALSE(ev.at("online").as_bool());
  CHECK(text_of(ev.at("node")) == "n1"); // the reaper publishes
  CHECK(st.presence_offline == 2);
}

TEST_CASE_FIXTURE(
    presence_cluster_fixture,
    "presence cluster: a dead node another survivor claimed is not reaped") {
  started();
  answer("SMEMBERS", [](auto&) { return bulks({"n1", "n2"}); });
  answer("EXISTS", [](auto&) { return integer(0); });
  answer("SREM", [](auto&) { return integer(0); }); // the other survivor won
  answer("SCAN", [](auto&) { return scan_reply("0", {"hp:presence:5"}); });
  advance(2s);
  CHECK(named("SREM").size() == 1);
  CHECK(named("SCAN").empty());
  CHECK(scripts(reap_lua).empty());
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: a dead node whose reap failed is reaped again") {
  started_with_dead_node();
  lose_first_answer_to("EVALSCRIPT");
  advance(2s); // claimed (out of P`nodes`), and the reap's answer lost
  CHECK(named("SREM") == std::vector<redis_command>{{"SREM", "hp:nodes", "n2"}});
  CHECK(st.presence_offline == 0);
  log->pipelines.clear();
  advance(2s); // registered again, claimed again, reaped
  CHECK(named("SADD") == std::vector<redis_command>{{"SADD", "hp:nodes", "n1"},
                                                    {"SADD", "hp:nodes", "n2"}});
  CHECK(named("SREM") == std::vector<redis_command>{{"SREM", "hp:nodes", "n2"}});
  CHECK(scripts(reap_lua).size() == 1);
  CHECK(st.presence_offline == 1);
  log->pipelines.clear();
  advance(2s); // done: not registered again
  CHECK(named("SADD") == std::vector<redis_command>{{"SADD", "hp:nodes", "n1"}});
  CHECK(named("SREM").empty());
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: a claim whose answer was lost is claimed again") {
  started_with_dead_node();
  lose_first_answer_to("SREM");
  advance(2s); // the SREM ran, its answer did not come
  CHECK(scripts(reap_lua).empty());
  advance(2s);
  CHECK(scripts(reap_lua).size() == 1);
  CHECK(st.presence_offline == 1);
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: back from an outage, the reaper waits a node ttl") {
  started();
  registry({"n1", "n2"}, "n2"); // n2's key expired while Redis was down
  redis_state(false);
  redis_state(true);
  for (int i = 0; i < 4; ++i)
    advance(2s); // heartbeats 2, 4, 6 and 8 s after Redis came back
  CHECK(named("SET").size() == 5);
  CHECK(named("EXISTS").empty());
  advance(2s); // a node_ttl (10 s) with Redis up: n2 did not beat
  CHECK(named("SREM") == std::vector<redis_command>{{"SREM", "hp:nodes", "n2"}});
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: the start clears a previous incarnation") {
  answer("SCAN", [](auto&) {
    return scan_reply("0", {"hp:presence:3", "hp:presence:4"});
  });
  start();
  REQUIRE(log->pipelines.size() >= 3);
  CHECK(log->pipelines[0].at(0).at(0) == "SET");
  CHECK(log->pipelines[1].at(0).at(0) == "SCAN");
  auto reaped = scripts(reap_lua);
  REQUIRE(reaped.size() == 2);
  // Its own fields, unconditionally (its own heartbeat key exists).
  CHECK(reaped[0].keys == strings{"hp:presence:3", "hp:online"});
  CHECK(reaped[0].args[0] == "n1");
  CHECK(reaped[1].keys == strings{"hp:presence:4", "hp:online"});
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: Redis back after an outage gets the local truth") {
  started();
  connected(7);
  connected(7);
  connected(8);
  disconnected(8); // in its grace period
  redis_state(true);
  CHECK(commands().size() == 4); // up without a down before: nothing to repair
  redis_state(false);
  log->pipelines.clear();
  answer("SCAN", [](auto&) {
    return scan_reply("0", {"hp:presence:7", "hp:presence:8", "hp:presence:9"});
  });
  redis_state(true);
  CHECK(named("SET").size() == 1); // a heartbeat right away
  auto asserted = scripts(connect_lua);
  REQUIRE(asserted.size() == 2);
  std::map<std::string, std::string> counts;
  for (auto& call : asserted)
    counts[call.keys.at(0)] = call.args.at(1);
  CHECK(counts == std::map<std::string, std::string>{{"hp:presence:7", "2"},
                                                     {"hp:presence:8", "0"}});
  // A field of this node for a user it no longer has goes.
  auto reaped = scripts(reap_lua);
  REQUIRE(reaped.size() == 1);
  CHECK(reaped[0].keys == strings{"hp:presence:9", "hp:online"});
  CHECK(reaped[0].args[0] == "n1");
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: an outage changes nothing local, a failed resync "
                  "is retried") {
  started();
  log->down = true;
  redis_state(false);
  connected(7);
  CHECK(online(7));
  CHECK_FALSE(online(8)); // false when Redis cannot say
  auto reply = request<user_list>(presence, query_atom::value, user_list{8, 7});
  REQUIRE(reply->has_value());
  CHECK(std::get<0>(**reply) == user_list{7});
  redis_state(true); // the redis actor says up, but this resync still fails
  log->pipelines.clear();
  log->down = false;
  advance(2s); // the next heartbeat runs it again
  auto asserted = scripts(connect_lua);
  REQUIRE(asserted.size() == 1);
  CHECK(asserted[0].keys.at(0) == "hp:presence:7");
  CHECK(named("SCAN").size() == 1);
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: a node found missing from P`nodes` writes itself "
                  "again") {
  started();
  connected(7);
  answer("SADD", [](auto&) { return integer(1); }); // it was not a member
  log->pipelines.clear();
  advance(2s);
  CHECK(scripts(connect_lua).size() == 1);
  CHECK(named("SCAN").size() == 1);
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: withdraw removes this node and answers") {
  started();
  connected(7);
  connected(8);
  disconnected(8);
  log->pipelines.clear();
  answer("EVALSCRIPT", [](auto&) { return integer(1); });
  CHECK(withdraw() == true);
  REQUIRE(log->pipelines.size() == 1);
  auto& pipeline = log->pipelines[0];
  REQUIRE(pipeline.size() == 4);
  std::vector<std::string> reaped_keys;
  for (std::size_t i = 0; i < 2; ++i) {
    auto call = script_of(pipeline[i]);
    CHECK(call.lua == reap_lua);
    CHECK(call.args.at(0) == "n1");
    CHECK(call.keys.size() == 2);
    reaped_keys.push_back(call.keys.at(0));
  }
  std::sort(reaped_keys.begin(), reaped_keys.end());
  CHECK(reaped_keys == strings{"hp:presence:7", "hp:presence:8"});
  CHECK(pipeline[2] == redis_command{"DEL", "hp:node:n1"});
  CHECK(pipeline[3] == redis_command{"SREM", "hp:nodes", "n1"});
  CHECK(st.presence_offline == 2);
  // Nothing is written any more: no heartbeat, no expiry, no connect.
  log->pipelines.clear();
  connected(9);
  advance(10s);
  CHECK(log->pipelines.empty());
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: withdraw answers even when Redis is down") {
  started();
  connected(7);
  log->down = true;
  CHECK(withdraw() == true);
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: online, query and count ask Redis for other "
                  "nodes' users") {
  started();
  connected(7);
  connected(7);
  answer("SISMEMBER", [](const redis_command& cmd) { return integer(cmd.at(2) == "5"); });
  answer("SMISMEMBER", [](const redis_command& cmd) {
    std::vector<redis_reply> flags;
    for (std::size_t i = 2; i < cmd.size(); ++i)
      flags.push_back(integer(cmd[i] == "5"));
    return array(flags);
  });
  answer("HGETALL", [](const redis_command& cmd) {
    if (cmd.at(1) == "hp:presence:7")
      return bulks({"n1", "1", "n2", "3"}); // n1's write of 2 still on its way
    return bulks({"n2", "0", "n3", "4"});
  });
  log->pipelines.clear();
  CHECK(online(5));
  CHECK_FALSE(online(6));
  CHECK(named("SISMEMBER").size() == 2);
  auto listed = request<user_list>(presence, query_atom::value, user_list{6, 7, 5});
  REQUIRE(listed->has_value());
  CHECK(std::get<0>(**listed) == user_list{7, 5});
  CHECK(named("SMISMEMBER") ==
        std::vector<redis_command>{{"SMISMEMBER", "hp:online", "6", "7", "5"}});
  auto counted = request<bool, std::uint64_t>(presence, count_atom::value, user_id{7});
  REQUIRE(counted->has_value());
  CHECK(**counted == std::tuple<bool, std::uint64_t>{true, 5});
  auto remote = request<bool, std::uint64_t>(presence, count_atom::value, user_id{5});
  REQUIRE(remote->has_value());
  CHECK(**remote == std::tuple<bool, std::uint64_t>{true, 4});
  // Both in one round trip each.
  CHECK(log->pipelines.back() ==
        redis_pipeline{{"SISMEMBER", "hp:online", "5"}, {"HGETALL", "hp:presence:5"}});
}

TEST_CASE_FIXTURE(presence_cluster_fixture,
                  "presence cluster: standalone presence talks to no Redis") {
  auto standalone = spawn_presence(sys, cfg, st);
  run();
  send(standalone, connected_atom::value, user_id{7});
  advance(10s);
  CHECK(log->pipelines.empty());
  auto reply = request<bool>(standalone, withdraw_atom::value);
  REQUIRE(reply->has_value());
  CHECK(std::get<0>(**reply));
}

// -- the scripts and the actor against a real redis-server ---------------------
//
// The scripts run through redis_connection, the client the redis actor uses
// (EVALSCRIPT as EVALSHA); the actor tests run the real redis actor on a
// real scheduler and poll Redis with a bound.

namespace {

using clock_type = std::chrono::steady_clock;

std::int64_t script_result(const redis_result& result) {
  REQUIRE_MESSAGE(result.ok(), result.error);
  REQUIRE(result.replies.size() == 1);
  REQUIRE_MESSAGE(!result.replies[0].is_error(), result.replies[0].str);
  return result.replies[0].integer;
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

std::string ev(user_id user, bool online, std::string_view node) {
  return presence_event(user, online, node, 1);
}

using transition = std::tuple<std::string, bool, std::string>;
using transition_list = std::vector<transition>;

} // namespace

TEST_CASE_FIXTURE(real_redis, "presence scripts (real Redis): connect and expire across "
                              "two nodes publish each transition once") {
  using namespace presence_scripts;
  CHECK(script(connect(keys, 7, "n1", 1, ev(7, true, "n1"))) == 1);
  CHECK(script(connect(keys, 7, "n2", 1, ev(7, true, "n2"))) == 0);
  CHECK(member(7));
  // n1's last connection closes: its 0 stays through its grace period.
  CHECK(script(connect(keys, 7, "n1", 0, ev(7, true, "n1"))) == 0);
  CHECK(fields(7) == strings{"n1", "0", "n2", "1"});
  // n1's grace ends while n2 has a connection: no transition (guarantee 3).
  CHECK(script(expire(keys, 7, "n1", ev(7, false, "n1"))) == 0);
  CHECK(fields(7) == strings{"n2", "1"});
  CHECK(member(7));
  // An expire for a node that has connections again does nothing.
  CHECK(script(expire(keys, 7, "n2", ev(7, false, "n2"))) == 0);
  CHECK(fields(7) == strings{"n2", "1"});
  CHECK(script(connect(keys, 7, "n2", 0, ev(7, true, "n2"))) == 0);
  CHECK(script(expire(keys, 7, "n2", ev(7, false, "n2"))) == 1);
  CHECK(one({"EXISTS", keys.user(7)}).integer == 0);
  CHECK_FALSE(member(7));
  CHECK(script(expire(keys, 7, "n2", ev(7, false, "n2"))) == 0);
  CHECK(transitions() == transition_list{{"7", true, "n1"}, {"7", false, "n2"}});
}

TEST_CASE_FIXTURE(real_redis, "presence scripts (real Redis): reap removes a dead node's "
                              "fields, never a live node's") {
  using namespace presence_scripts;
  script(connect(keys, 8, "n3", 2, ev(8, true, "n3")));
  script(connect(keys, 9, "n3", 1, ev(9, true, "n3")));
  script(connect(keys, 9, "n1", 0, ev(9, true, "n1"))); // n1: in its grace
  one({"SET", keys.node("n3"), "1", "PX", "60000"});
  CHECK(script(reap(keys, 8, "n3", ev(8, false, "n1"), true)) == 0);
  CHECK(fields(8) == strings{"n3", "2"});
  one({"DEL", keys.node("n3")});
  CHECK(script(reap(keys, 8, "n3", ev(8, false, "n1"), true)) == 1);
  CHECK(one({"EXISTS", keys.user(8)}).integer == 0);
  CHECK_FALSE(member(8));
  CHECK(script(reap(keys, 9, "n3", ev(9, false, "n1"), true)) == 0);
  CHECK(member(9)); // n1's zero keeps it online until n1's grace ends
  CHECK(script(reap(keys, 8, "n3", ev(8, false, "n1"), true)) == 0);
  // A node clears its own fields whatever its heartbeat says.
  one({"SET", keys.node("n1"), "1", "PX", "60000"});
  CHECK(script(reap(keys, 9, "n1", ev(9, false, "n1"), false)) == 1);
  CHECK_FALSE(member(9));
  CHECK(transitions() == transition_list{{"8", true, "n3"},
                                         {"9", true, "n3"},
                                         {"8", false, "n1"},
                                         {"9", false, "n1"}});
}

TEST_CASE_FIXTURE(real_redis, "presence scripts (real Redis): two reapers racing, one "
                              "claims and each user goes offline once") {
  using namespace presence_scripts;
  constexpr user_id users = 200;
  // Users 1..100 only on the dead n3; 101..200 also on the live n4.
  redis_pipeline setup{{"SADD", keys.nodes, "n3", "n4"},
                       {"SET", keys.node("n4"), "1", "PX", "60000"}};
  for (user_id user = 1; user <= users; ++user) {
    setup.push_back(connect(keys, user, "n3", 1, ev(user, true, "n3")));
    if (user > users / 2)
      setup.push_back(connect(keys, user, "n4", 1, ev(user, true, "n4")));
  }
  REQUIRE(conn.run(setup).ok());
  events(); // the online events of the setup
  seen.clear();
  // Both survivors notice at once: the claim lets exactly one of them reap.
  // And were both to reap, the scripts still take each user offline once.
  std::atomic<int> ready{0};
  std::atomic<std::int64_t> claims{0};
  std::atomic<std::int64_t> published{0};
  auto reaper = [&](std::string self_id) {
    auto own = new_connection();
    ready.fetch_add(1);
    while (ready.load() < 2)
      std::this_thread::yield();
    auto claim = own.run({{"SREM", keys.nodes, "n3"}});
    REQUIRE(claim.ok());
    claims.fetch_add(claim.replies.at(0).integer);
    redis_pipeline reaps;
    for (user_id user = 1; user <= users; ++user)
      reaps.push_back(reap(keys, user, "n3", ev(user, false, self_id), true));
    auto result = own.run(reaps);
    REQUIRE(result.ok());
    for (auto& reply : result.replies)
      published.fetch_add(reply.integer);
  };
  std::thread first{reaper, "n1"};
  std::thread second{reaper, "n2"};
  first.join();
  second.join();
  CHECK(claims.load() == 1);
  CHECK(published.load() == users / 2);
  std::multiset<std::string> offline;
  for (auto& [user, online, node] : transitions(200ms)) {
    CHECK_FALSE(online);
    offline.insert(user);
  }
  CHECK(offline.size() == users / 2);
  for (user_id user = 1; user <= users; ++user) {
    CHECK(offline.count(std::to_string(user)) == (user <= users / 2 ? 1u : 0u));
    CHECK(member(user) == (user > users / 2));
  }
}

namespace {

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
    presence_settings pcfg;
    pcfg.grace_period = 100ms;
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

} // namespace

TEST_CASE_FIXTURE(real_cluster, "presence cluster (real Redis): two survivors reap a "
                                "dead node exactly once") {
  using namespace presence_scripts;
  constexpr user_id users = 60;
  // n3 died holding users 1..60; 51..60 are also on n4, which is alive.
  redis_pipeline setup{{"SADD", keys.nodes, "n3", "n4"},
                       {"SET", keys.node("n4"), "1", "PX", "60000"}};
  for (user_id user = 1; user <= users; ++user) {
    setup.push_back(connect(keys, user, "n3", 1, ev(user, true, "n3")));
    if (user > 50)
      setup.push_back(connect(keys, user, "n4", 1, ev(user, true, "n4")));
  }
  REQUIRE(conn.run(setup).ok());
  events();
  seen.clear();
  stats st1;
  stats st2;
  node("n1", st1);
  node("n2", st2);
  CHECK(eventually(
      [&] {
        return one({"SCARD", keys.online}).integer == 10 &&
               one({"SISMEMBER", keys.nodes, "n3"}).integer == 0;
      },
      3000ms));
  std::multiset<std::string> offline;
  std::set<std::string> reapers;
  for (auto& [user, online, node_id] : transitions(300ms)) {
    CHECK_FALSE(online);
    offline.insert(user);
    reapers.insert(node_id);
  }
  CHECK(offline.size() == 50);
  CHECK(std::set<std::string>(offline.begin(), offline.end()).size() == 50);
  CHECK(reapers.size() == 1); // one node claimed n3
  CHECK(st1.presence_offline + st2.presence_offline == 50);
  for (user_id user = 51; user <= users; ++user)
    CHECK(fields(user) == strings{"n4", "1"});
  CHECK(one({"SMEMBERS", keys.nodes}).elements.size() == 3); // n1, n2, n4
}

TEST_CASE_FIXTURE(real_cluster, "presence cluster (real Redis): a node's users, its "
                                "restart, a Redis restart and its withdrawal") {
  using namespace presence_scripts;
  // A previous incarnation of n1 left user 5 behind (guarantee 5).
  REQUIRE(conn.run({connect(keys, 5, "n1", 3, ev(5, true, "n1"))}).ok());
  stats st;
  auto presence = node("n1", st);
  CHECK(eventually([&] { return !member(5); }, 3000ms));
  caf::anon_send(presence, connected_atom::value, user_id{7});
  caf::anon_send(presence, connected_atom::value, user_id{8});
  caf::anon_send(presence, disconn_atom::value, user_id{8});
  CHECK(eventually([&] { return member(7) && fields(7) == strings{"n1", "1"}; }, 3000ms));
  CHECK(eventually([&] { return !member(8); }, 3000ms));
  CHECK(one({"TTL", keys.node("n1")}).integer >= 0);
  // Redis restarts without its data (guarantee 6).
  server.stop();
  REQUIRE(server.start());
  conn = new_connection();
  CHECK(eventually(
      [&] {
        return member(7) && fields(7) == strings{"n1", "1"} &&
               one({"SISMEMBER", keys.nodes, "n1"}).integer == 1;
      },
      5000ms));
  // Graceful shutdown (guarantee 7).
  CHECK(withdraw(presence));
  CHECK_FALSE(member(7));
  CHECK(one({"EXISTS", keys.user(7)}).integer == 0);
  CHECK(one({"EXISTS", keys.node("n1")}).integer == 0);
  CHECK(one({"SISMEMBER", keys.nodes, "n1"}).integer == 0);
}
