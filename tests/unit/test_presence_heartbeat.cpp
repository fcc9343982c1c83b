#include "src/base/log.hpp"

// This node's heartbeat and the reaper of dead nodes: against the fake
// redis actor, then the reap script and two survivors against a real
// redis-server.

#include "src/redis/presence_scripts.hpp"
#include "tests/unit/presence_fixture.hpp"
#include "tests/unit/presence_real_redis.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;
using presence_scripts::connect_lua;
using presence_scripts::reap_lua;

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
  dead_node_holding(users, users / 2);
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

TEST_CASE_FIXTURE(real_cluster, "presence cluster (real Redis): two survivors reap a "
                                "dead node exactly once") {
  constexpr user_id users = 60;
  // n3 died holding users 1..60; 51..60 are also on n4, which is alive.
  dead_node_holding(users, 50);
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
