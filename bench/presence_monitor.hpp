// Where churn and storm learn about presence. In cluster mode (--redis) from
// Redis, as other services would: offline events on the P`presence` channel
// and the truth in the P`online` set (SPEC 4). Standalone, from a watcher
// client: `watch` and its `presence_changed` events, and `presence` queries.
#pragma once

#include "bench/io_runner.hpp"
#include "bench/options.hpp"

#include <memory>

namespace bench {

class presence_monitor {
public:
  virtual ~presence_monitor() = default;
  // Offline transitions seen since the start for the users watched.
  virtual std::uint64_t offline_events() = 0;
  // How many of the users watched are not online now (blocking).
  virtual std::uint64_t not_online() = 0;
  // "redis" or "watcher".
  virtual const char* source() const = 0;
};

// Watches users [first, first + count); returns once events are flowing.
// Throws std::runtime_error when Redis or the watcher cannot be reached.
// The watcher's socket belongs to `io`: destroy the monitor after io.stop().
std::unique_ptr<presence_monitor> start_monitor(io_runner& io, const options& opts,
                                                std::uint64_t first, std::uint64_t count);

std::unique_ptr<presence_monitor>
start_redis_monitor(const options& opts, std::uint64_t first, std::uint64_t count);
std::unique_ptr<presence_monitor> start_watcher_monitor(io_runner& io,
                                                        const options& opts,
                                                        std::uint64_t first,
                                                        std::uint64_t count);

} // namespace bench
