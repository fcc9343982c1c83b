#include "src/base/log.hpp"

// The Redis clients and actors against a real redis-server (tests/unit/
// redis_server.hpp). The actors are detached and need real threads, so these
// tests run a real scheduler and wait for messages with bounded receives.

#include "actors/redis.hpp"
#include "src/redis/client.hpp"
#include "tests/unit/real_system.hpp"
#include "tests/unit/redis_server.hpp"

#include <doctest/doctest.h>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/scoped_actor.hpp"
#include "caf/send.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

redis_connection connected(const redis_endpoint& endpoint,
                           std::chrono::nanoseconds command_timeout = 1s) {
  redis_connection conn;
  auto why = conn.connect(endpoint, 1s, command_timeout);
  REQUIRE_MESSAGE(why.empty(), why);
  return conn;
}

redis_replies run(redis_connection& conn, const redis_pipeline& pipeline) {
  auto result = conn.run(pipeline);
  REQUIRE_MESSAGE(result.ok(), result.error);
  REQUIRE(result.replies.size() == pipeline.size());
  return std::move(result.replies);
}

redis_reply run_one(redis_connection& conn, const redis_command& command) {
  return run(conn, {command}).front();
}

// PUBSUB NUMSUB of one channel.
std::int64_t subscribers(redis_connection& conn, const std::string& channel) {
  auto reply = run_one(conn, {"PUBSUB", "NUMSUB", channel});
  REQUIRE(reply.type == redis_reply::kind::array);
  REQUIRE(reply.elements.size() == 2);
  return reply.elements[1].integer;
}

// calls=N of one command in INFO commandstats.
std::int64_t calls(redis_connection& conn, const std::string& command) {
  auto info = run_one(conn, {"INFO", "commandstats"}).str;
  auto key = "cmdstat_" + command + ":calls=";
  auto at = info.find(key);
  return at == std::string::npos ? 0 : std::stoll(info.substr(at + key.size()));
}

const std::string binary_value{"a\0b\r\n\xff\x01 z", 10};

// How the redis actor's errors look to its callers.
bool is(const caf::error& err, redis_errc code) {
  return err.category() == caf::atom("redis") &&
         err.code() == static_cast<std::uint8_t>(code);
}

} // namespace

// -- parse_redis_url ----------------------------------------------------------

TEST_CASE("redis: parse_redis_url reads every part of a good URL") {
  auto plain = parse_redis_url("redis://localhost:6379");
  REQUIRE(plain);
  CHECK(plain->host == "localhost");
  CHECK(plain->port == 6379);
  CHECK(plain->password.empty());
  CHECK(plain->db == 0);

  auto full = parse_redis_url("redis://:s3cret@redis.example.com:6380/15");
  REQUIRE(full);
  CHECK(full->host == "redis.example.com");
  CHECK(full->port == 6380);
  CHECK(full->password == "s3cret");
  CHECK(full->db == 15);

  auto v4 = parse_redis_url("redis://10.0.0.7:1/0");
  REQUIRE(v4);
  CHECK(v4->host == "10.0.0.7");
  CHECK(v4->port == 1);

  auto v6 = parse_redis_url("redis://[::1]:65535/2");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 65535);
  CHECK(v6->db == 2);

  auto encoded = parse_redis_url("redis://:p%40ss%3Aw%2Fd@h:7");
  REQUIRE(encoded);
  CHECK(encoded->password == "p@ss:w/d");

  auto raw_at = parse_redis_url("redis://:pa@ss@h:7");
  REQUIRE(raw_at);
  CHECK(raw_at->password == "pa@ss");
  CHECK(raw_at->host == "h");

  auto trailing_slash = parse_redis_url("REDIS://h:7/");
  REQUIRE(trailing_slash);
  CHECK(trailing_slash->db == 0);
}

TEST_CASE("redis: parse_redis_url refuses anything else") {
  for (auto url : {"",
                   "redis://",
                   "localhost:6379",
                   "http://h:1",
                   "rediss://h:1",
                   "redis://h",
                   "redis://h:",
                   "redis://h:0",
                   "redis://h:65536",
                   "redis://h:99999999999999999999",
                   "redis://h:12a",
                   "redis://:1",
                   "redis://user:pw@h:1",
                   "redis://:pw@h",
                   "redis://@h:1",
                   "redis://:%zz@h:1",
                   "redis://:%4@h:1",
                   "redis://[::1:1",
                   "redis://[zz]:1",
                   "redis://[]:1",
                   "redis://::1:1",
                   "redis://h:1/x",
                   "redis://h:1/1/2",
                   "redis://h:1/-1",
                   "redis://h:1?db=1",
                   "redis://h:1/99999999999",
                   "redis://ho st:1",
                   "redis://h:1 "}) {
    CAPTURE(url);
    CHECK_FALSE(parse_redis_url(url));
  }
}

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

// -- redis_subscription -------------------------------------------------------

TEST_CASE("redis: a subscription gets messages of its channels only") {
  redis_server server;
  REQUIRE(server.running());
  auto conn = connected(server.endpoint());
  redis_subscription sub;
  REQUIRE(sub.connect(server.endpoint(), 1s, 1s).empty());
  REQUIRE(sub.subscribe({"a", "b"}));
  REQUIRE(sub.requested() == 2);
  REQUIRE(eventually([&] {
    CHECK(sub.poll(10ms).empty());
    return sub.confirmed() == 2;
  }));
  CHECK(run_one(conn, {"PUBLISH", "a", binary_value}).integer == 1);
  std::vector<redis_subscription::message> got;
  REQUIRE(eventually([&] {
    for (auto& message : sub.poll(10ms))
      got.push_back(message);
    return !got.empty();
  }));
  REQUIRE(got.size() == 1);
  CHECK(got[0].first == "a");
  CHECK(got[0].second == binary_value);

  REQUIRE(sub.unsubscribe({"a"}));
  REQUIRE(eventually([&] {
    CHECK(sub.poll(10ms).empty());
    return sub.confirmed() == 3;
  }));
  CHECK(run_one(conn, {"PUBLISH", "a", "lost"}).integer == 0);
  CHECK(run_one(conn, {"PUBLISH", "b", "kept"}).integer == 1);
  got.clear();
  REQUIRE(eventually([&] {
    for (auto& message : sub.poll(10ms))
      got.push_back(message);
    return !got.empty();
  }));
  REQUIRE(got.size() == 1);
  CHECK(got[0].first == "b");
  CHECK(got[0].second == "kept");

  // A burst arrives complete, in order.
  redis_pipeline burst;
  for (int i = 0; i < 500; ++i)
    burst.push_back({"PUBLISH", "b", std::to_string(i) + std::string(200, 'x')});
  run(conn, burst);
  got.clear();
  REQUIRE(eventually([&] {
    for (auto& message : sub.poll(10ms))
      got.push_back(message);
    return got.size() >= 500;
  }));
  CHECK(got.size() == 500);
  CHECK(got[499].second.rfind("499x", 0) == 0);

  server.stop();
  REQUIRE(eventually([&] {
    sub.poll(10ms);
    return !sub.connected();
  }));
  CHECK_FALSE(sub.error().empty());
  CHECK(sub.fd() == -1);
}

// -- the actors ---------------------------------------------------------------

namespace {

// What the actors use, built before the actor system and destroyed after it
// has waited for them.
struct redis_parts {
  stats st;
  redis_server server;
};

struct redis_fixture : redis_parts, real_system {
  caf::scoped_actor self;

  redis_fixture() : self(sys) {}

  redis_settings settings() const {
    redis_settings result;
    result.endpoint = server.endpoint();
    result.connect_timeout = 500ms;
    result.command_timeout = 500ms;
    return result;
  }

  redis_actor start_redis(redis_settings cfg) {
    auto result = spawn_redis(sys, std::move(cfg), st);
    spawned.push_back(caf::actor_cast<caf::actor>(result));
    return result;
  }

  subscriber_actor start_subscriber(redis_settings cfg,
                                    std::vector<std::string> channels = {}) {
    auto result = spawn_subscriber(
        sys, std::move(cfg), st, caf::actor_cast<caf::actor>(self), std::move(channels));
    spawned.push_back(caf::actor_cast<caf::actor>(result));
    return result;
  }

  // The next (redis_state, up) to the scoped actor, which must say `want`.
  void expect_state(bool want, std::chrono::milliseconds bound = 3000ms) {
    bool received = false;
    self->receive(
        [&](redis_state_atom, bool up) {
          CHECK(up == want);
          received = true;
        },
        caf::after(bound) >> [] {});
    CHECK_MESSAGE(received, "no redis_state within the bound, expected " << want);
  }

  // The next (remote, channel, message).
  std::pair<std::string, std::string>
  next_remote(std::chrono::milliseconds bound = 2000ms) {
    std::pair<std::string, std::string> result;
    self->receive(
        [&](remote_atom, const std::string& channel, const std::string& message) {
          result = {channel, message};
        },
        caf::after(bound) >> [] {});
    return result;
  }

  // Replies, or the error of the request.
  caf::error ask(const redis_actor& redis, redis_pipeline pipeline, redis_replies& out,
                 caf::timespan bound = std::chrono::seconds(2)) {
    caf::error result;
    self->request(redis, bound, redis_atom::value, std::move(pipeline))
        .receive([&](redis_replies& replies) { out = std::move(replies); },
                 [&](caf::error& err) { result = std::move(err); });
    return result;
  }
};

} // namespace

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

TEST_CASE_FIXTURE(redis_fixture,
                  "redis: the subscriber delivers, unsubscribes, resubscribes") {
  auto conn = connected(server.endpoint());
  auto sub = start_subscriber(settings());
  expect_state(true);
  auto asked = clock_type::now();
  self->send(sub, subscribe_atom::value, std::vector<std::string>{"ch:a", "ch:b"});
  REQUIRE(eventually([&] { return subscribers(conn, "ch:a") == 1; }, 1000ms));
  CHECK(subscribers(conn, "ch:b") == 1);
  CHECK(clock_type::now() - asked < 200ms);
  run_one(conn, {"PUBLISH", "ch:a", binary_value});
  auto got = next_remote();
  CHECK(got.first == "ch:a");
  CHECK(got.second == binary_value);

  self->send(sub, unsub_atom::value, std::vector<std::string>{"ch:a"});
  REQUIRE(eventually([&] { return subscribers(conn, "ch:a") == 0; }, 1000ms));
  run(conn, {{"PUBLISH", "ch:a", "lost"}, {"PUBLISH", "ch:b", "kept"}});
  got = next_remote();
  CHECK(got.first == "ch:b");
  CHECK(got.second == "kept");

  // Redis goes away; meanwhile the node wants one more channel.
  server.stop();
  expect_state(false);
  self->send(sub, subscribe_atom::value, std::vector<std::string>{"ch:c"});
  REQUIRE(server.start());
  expect_state(true);
  // "up" comes after Redis confirmed every channel again.
  REQUIRE(conn.connect(server.endpoint(), 1s, 1s).empty());
  CHECK(subscribers(conn, "ch:a") == 0);
  CHECK(subscribers(conn, "ch:b") == 1);
  CHECK(subscribers(conn, "ch:c") == 1);
  run(conn, {{"PUBLISH", "ch:b", "again"}, {"PUBLISH", "ch:c", "new"}});
  got = next_remote();
  CHECK(got.first == "ch:b");
  CHECK(got.second == "again");
  got = next_remote();
  CHECK(got.first == "ch:c");
  CHECK(got.second == "new");
}

// What a node's /readyz stands on: a ready node hears its channels.
TEST_CASE_FIXTURE(
    redis_fixture,
    "redis: the subscriber says up once its first channels are subscribed") {
  auto conn = connected(server.endpoint());
  start_subscriber(settings(), {"ch:a", "ch:b"});
  expect_state(true);
  CHECK(subscribers(conn, "ch:a") == 1);
  CHECK(subscribers(conn, "ch:b") == 1);
  run_one(conn, {"PUBLISH", "ch:b", "first"});
  auto got = next_remote();
  CHECK(got.first == "ch:b");
  CHECK(got.second == "first");
}

TEST_CASE_FIXTURE(redis_fixture, "redis: the subscriber ends with its sink") {
  caf::actor sink = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](redis_state_atom, bool) {},
            [](remote_atom, const std::string&, const std::string&) {}};
  });
  auto sub = spawn_subscriber(sys, settings(), st, sink, {});
  spawned.push_back(caf::actor_cast<caf::actor>(sub));
  self->monitor(sub);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; }, caf::after(2s) >> [] {});
  CHECK(down);
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
