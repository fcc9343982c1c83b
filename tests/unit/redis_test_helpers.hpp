// What the Redis tests share: a real redis-server (redis_server.hpp),
// shortcuts over the command connection, and the fixture for the detached
// Redis actors, which need a real scheduler and bounded receives.
#pragma once

#include "src/base/log.hpp"

#include "actors/messages.hpp"
#include "actors/redis_commands.hpp"
#include "actors/redis_subscriber.hpp"
#include "src/redis/commands.hpp"
#include "tests/unit/real_system.hpp"
#include "tests/unit/redis_server.hpp"

#include <doctest/doctest.h>

#include "caf/actor_system.hpp"
#include "caf/scoped_actor.hpp"
#include "caf/send.hpp"

namespace hubnode::test {

using namespace std::chrono_literals;

using clock_type = std::chrono::steady_clock;

inline redis_connection connected(const redis_endpoint& endpoint,
                                  std::chrono::nanoseconds command_timeout = 1s) {
  redis_connection conn;
  auto why = conn.connect(endpoint, 1s, command_timeout);
  REQUIRE_MESSAGE(why.empty(), why);
  return conn;
}

inline redis_replies run(redis_connection& conn, const redis_pipeline& pipeline) {
  auto result = conn.run(pipeline);
  REQUIRE_MESSAGE(result.ok(), result.error);
  REQUIRE(result.replies.size() == pipeline.size());
  return std::move(result.replies);
}

inline redis_reply run_one(redis_connection& conn, const redis_command& command) {
  return run(conn, {command}).front();
}

// PUBSUB NUMSUB of one channel.
inline std::int64_t subscribers(redis_connection& conn, const std::string& channel) {
  auto reply = run_one(conn, {"PUBSUB", "NUMSUB", channel});
  REQUIRE(reply.type == redis_reply::kind::array);
  REQUIRE(reply.elements.size() == 2);
  return reply.elements[1].integer;
}

// calls=N of one command in INFO commandstats.
inline std::int64_t calls(redis_connection& conn, const std::string& command) {
  auto info = run_one(conn, {"INFO", "commandstats"}).str;
  auto key = "cmdstat_" + command + ":calls=";
  auto at = info.find(key);
  return at == std::string::npos ? 0 : std::stoll(info.substr(at + key.size()));
}

inline const std::string binary_value{"a\0b\r\n\xff\x01 z", 10};

// How the redis actor's errors look to its callers.
inline bool is(const caf::error& err, redis_errc code) {
  return err.category() == caf::atom("redis") &&
         err.code() == static_cast<std::uint8_t>(code);
}

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

} // namespace hubnode::test
