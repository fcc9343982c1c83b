// The limits and timings the actors run with, copied from the configuration
// at start so that actors never read global config.
//
// A member that is a node option has no default here: make_*_settings
// (src/config.hpp) always fills it from node_options, whose defaults
// (src/base/options.hpp) are the only ones, and the unit tests start from
// node_options{} too. The defaults written here are of tunables that are no
// option, and this is their one place.
#pragma once

#include "src/base/clock.hpp"
#include "src/base/incarnation.hpp"
#include "src/base/types.hpp"
#include "src/redis/types.hpp"

#include <functional>

#include "caf/timestamp.hpp"

namespace hubnode {

struct hub_settings {
  std::string node_id;
  // Taken when the settings are made, at start; goes into every message id.
  std::string incarnation = hubnode::incarnation(now_ms());
  std::size_t max_connections{};
  std::size_t max_connections_per_user{};
  caf::timespan ping_interval{};
  caf::timespan sweep_interval{};
  // The streams of SPEC section 8, standalone mode only: direct messages
  // (the hub) and channels (the channels actor, which runs with these
  // settings too).
  std::size_t history_user_size{};
  std::size_t history_size{};
  caf::timespan history_ttl{};
  std::size_t recover_limit{};
};

struct connection_settings {
  std::string node_id;
  std::size_t max_channels{}; // subscriptions one connection may hold
  caf::timespan idle_timeout{};
  std::size_t send_queue_limit{};
  std::uint32_t rate_limit{}; // messages per second, burst twice that
  caf::timespan flood_close_after = std::chrono::seconds(3);
};

// Shared by every connection actor rather than copied into each: an idle
// connection should not carry its own copy of the node id.
using connection_settings_ptr = std::shared_ptr<const connection_settings>;

struct presence_settings {
  caf::timespan grace_period{};
  std::size_t max_watched{}; // users one connection may watch
  // Whether the node has handshakes it has not finished (src/net/admissions.hpp);
  // while it has, a grace period that runs out is held open, at most
  // max_hold longer. Empty: never.
  std::function<bool()> admitting{};
  caf::timespan max_hold = std::chrono::milliseconds(500);
  // cluster mode only
  std::string node_id;
  std::string key_prefix;
  caf::timespan heartbeat_interval{};
  caf::timespan node_ttl{};
};

struct redis_settings {
  redis_endpoint endpoint;
  std::string key_prefix;
  std::string node_id;
  caf::timespan connect_timeout = std::chrono::seconds(1);
  caf::timespan command_timeout = std::chrono::seconds(1);
  caf::timespan backoff_min = std::chrono::milliseconds(100);
  caf::timespan backoff_max = std::chrono::seconds(2);
  // The longest the subscriber waits on its socket in one round; a message
  // for it ends the wait at once, so this only bounds an idle round.
  caf::timespan poll_interval = std::chrono::milliseconds(20);
};

} // namespace hubnode
