#include "src/base/log.hpp"

// Online, query and count: from the local truth standalone, and from Redis
// for other nodes' users in cluster mode.

#include "tests/unit/presence_fixture.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

TEST_CASE_FIXTURE(presence_fixture,
                  "presence: query answers the online subset in order") {
  connected(3);
  connected(1);
  auto reply = request<user_list>(presence, query_atom::value, user_list{1, 2, 3});
  REQUIRE(reply->has_value());
  CHECK(std::get<0>(**reply) == user_list{1, 3});
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
