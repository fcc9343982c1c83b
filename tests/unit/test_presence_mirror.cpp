#include "src/base/log.hpp"

// The Redis mirror: what connects and grace expiries write, the resync at
// start and after an outage, the withdrawal; against the fake redis actor,
// then the scripts and the actor against a real redis-server.

#include "src/redis/presence_scripts.hpp"
#include "tests/unit/presence_fixture.hpp"
#include "tests/unit/presence_real_redis.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;
using presence_scripts::connect_lua;
using presence_scripts::expire_lua;
using presence_scripts::reap_lua;

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
