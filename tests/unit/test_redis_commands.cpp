#include "src/base/log.hpp"

// The command connection and the redis actor against a real redis-server.

#include "tests/unit/redis_test_helpers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

// -- redis_connection ---------------------------------------------------------

TEST_CASE("redis: a pipeline runs in order with binary-safe values") {
  redis_server server;
  REQUIRE(server.running());
  auto conn = connected(server.endpoint());
  auto key = std::string{"k\0ey", 4};
  auto replies = run(conn, {{"SET", key, binary_value},
                            {"GET", key},
                            {"INCR", "n"},
                            {"INCR", "n"},
                            {"RPUSH", "list", "a", binary_value},
                            {"INCR", "list"},
                            {"LRANGE", "list", "0", "-1"},
                            {"DEL", key, "n", "list"},
                            {"GET", key}});
  CHECK(replies[0].type == redis_reply::kind::status);
  CHECK(replies[0].str == "OK");
  CHECK(replies[1].type == redis_reply::kind::string);
  CHECK(replies[1].str == binary_value);
  CHECK(replies[2].integer == 1);
  CHECK(replies[3].type == redis_reply::kind::integer);
  CHECK(replies[3].integer == 2);
  CHECK(replies[4].integer == 2);
  // An error reply is one reply among the others, not a failure.
  CHECK(replies[5].is_error());
  CHECK(replies[5].str.rfind("WRONGTYPE", 0) == 0);
  REQUIRE(replies[6].type == redis_reply::kind::array);
  REQUIRE(replies[6].elements.size() == 2);
  CHECK(replies[6].elements[0].str == "a");
  CHECK(replies[6].elements[1].str == binary_value);
  CHECK(replies[7].integer == 3);
  CHECK(replies[8].type == redis_reply::kind::nil);
  CHECK(conn.connected());
  CHECK(run(conn, {}).empty());
}

TEST_CASE("redis: connect does AUTH and SELECT, and says why it failed") {
  redis_server server;
  REQUIRE(server.running());
  auto admin = connected(server.endpoint());
  run_one(admin, {"CONFIG", "SET", "requirepass", "pw"});

  auto endpoint = server.endpoint();
  endpoint.password = "pw";
  endpoint.db = 3;
  auto conn = connected(endpoint);
  run_one(conn, {"SET", "where", "db3"});
  CHECK(run_one(conn, {"SELECT", "3"}).str == "OK");
  CHECK(run_one(conn, {"GET", "where"}).str == "db3");
  run_one(conn, {"SELECT", "0"});
  CHECK(run_one(conn, {"GET", "where"}).type == redis_reply::kind::nil);

  redis_connection wrong;
  endpoint.password = "not-it";
  auto why = wrong.connect(endpoint, 1s, 1s);
  CHECK(why.find("AUTH failed") != std::string::npos);
  CHECK(why.find("not-it") == std::string::npos);
  CHECK_FALSE(wrong.connected());

  server.stop();
  redis_connection refused;
  why = refused.connect(server.endpoint(), 1s, 1s);
  CHECK(why.find(std::to_string(server.port())) != std::string::npos);
  CHECK_FALSE(refused.connected());
  CHECK(refused.run({{"PING"}}).error == "not connected");
}

TEST_CASE("redis: EVALSCRIPT runs as EVALSHA and survives SCRIPT FLUSH") {
  redis_server server;
  REQUIRE(server.running());
  auto conn = connected(server.endpoint());
  auto admin = connected(server.endpoint());
  std::string lua = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  redis_command add{"EVALSCRIPT", lua, "1", "counter", "5"};

  auto first = run(conn, {add, {"GET", "counter"}});
  CHECK(first[0].integer == 5);
  CHECK(first[1].str == "5");
  auto exists = run_one(admin, {"SCRIPT", "EXISTS", redis_script_sha(lua)});
  REQUIRE(exists.elements.size() == 1);
  CHECK(exists.elements[0].integer == 1);

  CHECK(run_one(conn, add).integer == 10);
  CHECK(calls(admin, "evalsha") == 2);
  CHECK(calls(admin, "eval") == 0);

  // Flushed by someone else: the connection cannot know, NOSCRIPT tells it.
  run_one(admin, {"SCRIPT", "FLUSH"});
  std::string other_lua = "return ARGV[1]";
  auto after = run(conn, {{"SET", "before", "1"},
                          add,
                          {"EVALSCRIPT", other_lua, "0", "x"},
                          add,
                          {"GET", "counter"}});
  CHECK(after[0].str == "OK");
  CHECK(after[1].integer == 15);
  CHECK(after[2].str == "x");
  CHECK(after[3].integer == 20);
  // Retried scripts run after the rest of their pipeline (see run()).
  CHECK(after[4].str == "10");
  CHECK(run_one(conn, add).integer == 25);
  CHECK(run_one(admin, {"GET", "counter"}).str == "25");
}

TEST_CASE("redis: scripts that fail answer with their error, never NOSCRIPT") {
  redis_server server;
  REQUIRE(server.running());
  auto conn = connected(server.endpoint());
  auto replies = run(conn, {{"EVALSCRIPT", "return +", "0"},
                            {"EVALSCRIPT", "return redis.call('NOPE')", "0"},
                            {"PING"}});
  CHECK(replies[0].is_error());
  CHECK(replies[0].str.find("NOSCRIPT") == std::string::npos);
  CHECK(replies[1].is_error());
  CHECK(replies[1].str.find("NOSCRIPT") == std::string::npos);
  CHECK(replies[2].str == "PONG");
  CHECK(conn.connected());
}

TEST_CASE("redis: a command timeout closes the connection, a new one works") {
  redis_server server;
  REQUIRE(server.running());
  auto conn = connected(server.endpoint(), 100ms);
  auto start = clock_type::now();
  // Blocks 500 ms on the server, without blocking the server.
  auto result = conn.run({{"BLPOP", "nothing", "0.5"}});
  auto took = clock_type::now() - start;
  CHECK_FALSE(result.ok());
  CHECK(result.error == "command timeout");
  CHECK(took >= 90ms);
  CHECK(took < 400ms);
  CHECK_FALSE(conn.connected());
  REQUIRE(conn.connect(server.endpoint(), 1s, 100ms).empty());
  CHECK(run_one(conn, {"PING"}).str == "PONG");
}

TEST_CASE("redis: a killed server fails the next pipeline") {
  redis_server server;
  REQUIRE(server.running());
  auto conn = connected(server.endpoint());
  CHECK(run_one(conn, {"PING"}).str == "PONG");
  server.stop();
  auto result = conn.run({{"PING"}});
  CHECK_FALSE(result.ok());
  CHECK_FALSE(conn.connected());
}

TEST_CASE("redis: probe notices a connection the server closed") {
  redis_server server;
  REQUIRE(server.running());
  auto conn = connected(server.endpoint());
  CHECK(conn.probe().empty());
  CHECK(conn.connected());
  run_one(conn, {"CLIENT", "KILL", "SKIPME", "no"});
  REQUIRE(eventually([&] { return !conn.probe().empty(); }));
  CHECK_FALSE(conn.connected());
}

// -- the redis actor ---------------------------------------------------------

TEST_CASE_FIXTURE(redis_fixture,
                  "redis: the redis actor connects, runs pipelines, reports") {
  auto redis = start_redis(settings());
  self->send(redis, listen_atom::value, caf::actor_cast<redis_listener>(self));
  expect_state(true);
  CHECK(st.redis_up == 1);
  redis_replies replies;
  auto err = ask(redis, {{"SET", "k", binary_value}, {"GET", "k"}}, replies);
  REQUIRE_MESSAGE(!err, to_string(err));
  REQUIRE(replies.size() == 2);
  CHECK(replies[1].str == binary_value);
  err = ask(redis, {{"EVALSCRIPT", "return KEYS[1] .. ARGV[1]", "1", "a", "b"}}, replies);
  REQUIRE(!err);
  CHECK(replies[0].str == "ab");
  // A second listener hears the current state at once.
  caf::scoped_actor other{sys};
  self->send(redis, listen_atom::value, caf::actor_cast<redis_listener>(other));
  bool told = false;
  other->receive([&](redis_state_atom, bool up) { told = up; }, caf::after(2s) >> [] {});
  CHECK(told);
  CHECK(st.redis_errors == 0);
}

TEST_CASE_FIXTURE(
    redis_fixture,
    "redis: the redis actor fails fast while Redis is down and comes back") {
  auto redis = start_redis([&] {
    auto cfg = settings();
    cfg.connect_timeout = std::chrono::seconds(1);
    cfg.command_timeout = std::chrono::seconds(1);
    return cfg; // the default backoff: 100 ms doubling to 2 s
  }());
  self->send(redis, listen_atom::value, caf::actor_cast<redis_listener>(self));
  expect_state(true);
  server.stop();
  redis_replies replies;
  // The first one finds the connection broken; the rest are refused at once.
  CHECK(ask(redis, {{"PING"}}, replies));
  expect_state(false);
  CHECK(st.redis_up == 0);
  auto start = clock_type::now();
  for (int i = 0; i < 20; ++i) {
    auto err = ask(redis, {{"PING"}}, replies);
    CHECK(is(err, redis_errc::down));
  }
  CHECK(clock_type::now() - start < 500ms);
  CHECK(st.redis_errors >= 21);

  // Long enough for the backoff to grow.
  std::this_thread::sleep_for(1500ms);
  REQUIRE(server.start());
  auto back = clock_type::now();
  expect_state(true, 3000ms);
  CHECK(clock_type::now() - back < 3000ms);
  CHECK(st.redis_up == 1);
  auto err = ask(redis, {{"PING"}}, replies);
  REQUIRE(!err);
  CHECK(replies[0].str == "PONG");
}

TEST_CASE_FIXTURE(redis_fixture,
                  "redis: after a restart in between, the next command still runs") {
  auto redis = start_redis(settings());
  self->send(redis, listen_atom::value, caf::actor_cast<redis_listener>(self));
  expect_state(true);
  redis_replies replies;
  REQUIRE(!ask(redis, {{"SET", "k", "v"}}, replies));
  server.stop();
  REQUIRE(server.start());
  auto err = ask(redis, {{"GET", "k"}}, replies);
  REQUIRE_MESSAGE(!err, to_string(err));
  CHECK(replies[0].type == redis_reply::kind::nil); // the data is gone, and
  expect_state(false);                              // listeners hear of it
  expect_state(true);
  CHECK(st.redis_up == 1);
}

TEST_CASE_FIXTURE(redis_fixture, "redis: the redis actor starts while Redis is down") {
  server.stop();
  auto redis = start_redis(settings());
  self->send(redis, listen_atom::value, caf::actor_cast<redis_listener>(self));
  expect_state(false);
  redis_replies replies;
  CHECK(is(ask(redis, {{"PING"}}, replies), redis_errc::down));
  REQUIRE(server.start());
  expect_state(true);
  CHECK(!ask(redis, {{"PING"}}, replies));
}

TEST_CASE_FIXTURE(redis_fixture,
                  "redis: a timed out command fails and the actor recovers") {
  auto redis = start_redis([&] {
    auto cfg = settings();
    cfg.command_timeout = std::chrono::milliseconds(100);
    return cfg;
  }());
  self->send(redis, listen_atom::value, caf::actor_cast<redis_listener>(self));
  expect_state(true);
  redis_replies replies;
  auto err = ask(redis, {{"BLPOP", "nothing", "0.5"}}, replies);
  CHECK(is(err, redis_errc::failed));
  // The connection was closed: down, then up again by itself.
  expect_state(false);
  expect_state(true);
  CHECK(!ask(redis, {{"PING"}}, replies));
}

TEST_CASE_FIXTURE(redis_fixture, "redis: spawning never waits for a Redis that hangs") {
  // Accepts connections (the kernel does) but never answers a command.
  auto mute = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  REQUIRE(::bind(mute, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(mute, 16) == 0);
  ::getsockname(mute, reinterpret_cast<sockaddr*>(&addr), &length);
  auto cfg = settings();
  cfg.endpoint.port = ntohs(addr.sin_port);
  cfg.command_timeout = std::chrono::milliseconds(300);
  auto start = clock_type::now();
  auto redis = start_redis(cfg);
  start_subscriber(cfg);
  CHECK(clock_type::now() - start < 100ms);
  expect_state(false); // the subscriber's first outcome
  self->send(redis, listen_atom::value, caf::actor_cast<redis_listener>(self));
  expect_state(false);
  redis_replies replies;
  CHECK(is(ask(redis, {{"PING"}}, replies), redis_errc::down));
  CHECK(st.redis_up == 0);
  ::close(mute);
}
