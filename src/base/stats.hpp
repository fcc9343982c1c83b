// The node's counters and gauges. Actors and sessions bump them with relaxed
// atomics (no lock on any hot path); src/wire/metrics.cpp renders them for
// /metrics and /healthz.
#pragma once

#include "src/base/types.hpp"

#include <array>
#include <atomic>

namespace hubnode {

using counter = std::atomic<std::uint64_t>;
using gauge = std::atomic<std::int64_t>;

enum class rejection : std::uint8_t {
  validation,
  unauthorized,
  forbidden_origin,
  over_capacity,
  too_many_connections,
  timeout
};
constexpr std::size_t rejection_count = 6;
const char* to_label(rejection reason);

enum class drop_reason : std::uint8_t { rate_limited, slow_consumer, redis_down };
constexpr std::size_t drop_reason_count = 3;
const char* to_label(drop_reason reason);

constexpr std::size_t close_reason_count = 6;

struct stats {
  gauge connections_active{0};
  counter connections_opened{0};
  std::array<counter, close_reason_count> connections_closed{};
  std::array<counter, rejection_count> handshakes_rejected{};
  counter reconnects{0};
  gauge users_online_local{0};
  counter messages_received{0};
  counter messages_delivered{0};
  counter messages_remote{0};
  std::array<counter, drop_reason_count> messages_dropped{};
  gauge send_queue_bytes_max{0};
  counter sweeps{0};
  counter stale_closed{0};
  counter presence_online{0};
  counter presence_offline{0};
  gauge redis_up{0};
  // The pub/sub connection is up with every channel confirmed. Not exported;
  // /readyz needs it, since a node that has not yet subscribed P`presence`
  // would miss transitions.
  gauge pubsub_up{0};
  counter redis_errors{0};
  gauge channels_active{0}; // channels with a subscriber here
  gauge subscriptions_active{0};
  counter publications{0};
  // Upgrades and subscribes that asked to recover, by result.
  counter recovered{0};
  counter not_recovered{0};

  void closed(close_reason r) { bump(connections_closed[index(r)]); }
  void rejected(rejection r) { bump(handshakes_rejected[index(r)]); }
  void dropped(drop_reason r) { bump(messages_dropped[index(r)]); }
  void recovery(bool ok) { bump(ok ? recovered : not_recovered); }
  void queue_bytes_seen(std::int64_t bytes);

  static void bump(counter& c, std::uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  static void add(gauge& g, std::int64_t n) { g.fetch_add(n, std::memory_order_relaxed); }

private:
  template <class Enum>
  static std::size_t index(Enum e) {
    return static_cast<std::size_t>(e);
  }
};

} // namespace hubnode
