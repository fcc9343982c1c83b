// The limits and timings the actors run with, copied from the configuration
// at start so that actors never read global config.
#pragma once

#include "src/base/types.hpp"
#include "src/redis/types.hpp"

#include <functional>

#include "caf/timestamp.hpp"

namespace hubnode {

struct hub_settings {
  std::string node_id = "node";
  std::size_t max_connections = 200000;
  std::size_t max_connections_per_user = 16;
  caf::timespan ping_interval = std::chrono::seconds(20);
  caf::timespan sweep_interval = std::chrono::seconds(30);
};

struct connection_settings {
  std::string node_id = "node";
  caf::timespan idle_timeout = std::chrono::seconds(60);
  std::size_t send_queue_limit = 1048576;
  std::uint32_t rate_limit = 100; // messages per second, burst twice that
  caf::timespan flood_close_after = std::chrono::seconds(3);
};

// Shared by every connection actor rather than copied into each: an idle
// connection should not carry its own copy of the node id.
using connection_settings_ptr = std::shared_ptr<const connection_settings>;

struct presence_settings {
  caf::timespan grace_period = std::chrono::milliseconds(100);
  std::size_t max_watched = 1000; // users one connection may watch
  // Whether the node has handshakes it has not finished (src/net/admissions.hpp);
  // while it has, a grace period that runs out is held open, at most
  // max_hold longer. Empty: never.
  std::function<bool()> admitting{};
  caf::timespan max_hold = std::chrono::milliseconds(500);
  // cluster mode only
  std::string node_id = "node";
  std::string key_prefix = "hubnode:";
  caf::timespan heartbeat_interval = std::chrono::seconds(2);
  caf::timespan node_ttl = std::chrono::seconds(10);
};

struct redis_settings {
  redis_endpoint endpoint;
  std::string key_prefix = "hubnode:";
  std::string node_id = "node";
  caf::timespan connect_timeout = std::chrono::seconds(1);
  caf::timespan command_timeout = std::chrono::seconds(1);
  caf::timespan backoff_min = std::chrono::milliseconds(100);
  caf::timespan backoff_max = std::chrono::seconds(2);
  // The longest the subscriber waits on its socket in one round; a message
  // for it ends the wait at once, so this only bounds an idle round.
  caf::timespan poll_interval = std::chrono::milliseconds(20);
};

} // namespace hubnode
