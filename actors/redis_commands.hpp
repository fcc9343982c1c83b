// The redis actor: the command connection to Redis (cluster mode only). It
// is detached: it blocks on its own thread (a command round trip, a
// connect), never on the scheduler's.
//
// It connects at once when spawned and again after every failure, with a
// backoff from redis_settings::backoff_min doubling to backoff_max, so the
// node starts and runs while Redis is down.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "src/base/stats.hpp"

#include <cstdint>

#include "caf/actor_system.hpp"
#include "caf/error.hpp"

namespace hubnode {

// Why a redis_actor request failed. The error's context is a message with
// the reason as one std::string.
enum class redis_errc : std::uint8_t {
  // not connected: answered at once, nothing was sent
  down = 1,
  // the connection broke or timed out during this pipeline; the commands
  // may or may not have run
  failed = 2,
};

// (redis, pipeline) answers the replies in order (Redis error replies among
// them) or an error of category "redis" (redis_errc). (listen, listener)
// sends the listener (redis_state, up) now and on every transition. It keeps
// stats.redis_up and stats.redis_errors.
redis_actor spawn_redis(caf::actor_system& sys, redis_settings cfg, stats& st);

} // namespace hubnode

CAF_ERROR_CODE_ENUM(hubnode::redis_errc, "redis")
