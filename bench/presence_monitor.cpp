#include "bench/presence_monitor.hpp"

namespace bench {

std::unique_ptr<presence_monitor> start_monitor(io_runner& io, const options& opts,
                                                std::uint64_t first,
                                                std::uint64_t count) {
  if (!opts.redis_url.empty())
    return start_redis_monitor(opts, first, count);
  return start_watcher_monitor(io, opts, first, count);
}

} // namespace bench
