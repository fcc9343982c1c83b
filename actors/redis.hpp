// The two actors that own a Redis connection each (cluster mode only). Both
// are detached: they block on their own thread (a command round trip, a
// connect, a 20 ms poll of the pub/sub socket), never on the scheduler's.
//
// Both connect at once when spawned and again after every failure, with a
// backoff from redis_settings::backoff_min doubling to backoff_max, so the
// node starts and runs while Redis is down.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "src/base/stats.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "caf/actor.hpp"
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

// The command connection. (redis, pipeline) answers the replies in order
// (Redis error replies among them) or an error of category "redis"
// (redis_errc). (listen, listener) sends the listener (redis_state, up) now
// and on every transition. It keeps stats.redis_up and stats.redis_errors.
redis_actor spawn_redis(caf::actor_system& sys, redis_settings cfg, stats& st);

// The pub/sub connection, subscribed to `channels` from the start. `sink`
// gets (remote, channel, message) for every message on a channel it is
// subscribed to, and (redis_state, up) on every up/down transition of this
// connection (the first outcome included); it says up only once Redis has
// confirmed every channel, the first time as after a reconnect. It ends
// with its sink.
subscriber_actor spawn_subscriber(caf::actor_system& sys, redis_settings cfg, stats& st,
                                  caf::actor sink, std::vector<std::string> channels);

} // namespace hubnode

CAF_ERROR_CODE_ENUM(hubnode::redis_errc, "redis")
