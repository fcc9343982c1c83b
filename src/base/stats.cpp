#include "src/base/stats.hpp"

namespace hubnode {

const char* to_label(close_reason reason) {
  static const char* labels[] = {"client", "stale",    "slow_consumer",
                                 "policy", "shutdown", "error"};
  return labels[static_cast<std::size_t>(reason)];
}

const char* to_label(rejection reason) {
  static const char* labels[] = {"validation",           "unauthorized",
                                 "forbidden_origin",     "over_capacity",
                                 "too_many_connections", "timeout"};
  return labels[static_cast<std::size_t>(reason)];
}

const char* to_label(drop_reason reason) {
  static const char* labels[] = {"rate_limited", "slow_consumer", "redis_down"};
  return labels[static_cast<std::size_t>(reason)];
}

// A high-water mark: raised with compare-and-swap so concurrent connections
// never lower it.
void stats::queue_bytes_seen(std::int64_t bytes) {
  auto seen = send_queue_bytes_max.load(std::memory_order_relaxed);
  while (bytes > seen && !send_queue_bytes_max.compare_exchange_weak(
                             seen, bytes, std::memory_order_relaxed)) {
  }
}

} // namespace hubnode
