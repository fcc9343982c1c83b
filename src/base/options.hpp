// The node's options (SPEC section 1) as plain values with their defaults.
// The defaults are written here and nowhere else: src/config.cpp's option
// table binds each key to a member, --help prints these values, and a test
// compares conf/hubnode.ini and the README against --help.
#pragma once

#include "src/base/log.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "caf/timespan.hpp"

namespace hubnode {

struct node_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::size_t io_threads = 1;
  std::size_t max_message_size = 65536;
  std::size_t max_connections = 200000;
  std::size_t max_connections_per_user = 16;
  caf::timespan handshake_timeout = std::chrono::seconds(5);
  caf::timespan shutdown_timeout = std::chrono::seconds(5);
  std::vector<std::string> allowed_origins;
  std::string api_key;
  std::string auth_mode = "userid";
  std::string jwt_secret;
  caf::timespan ping_interval = std::chrono::seconds(20);
  caf::timespan idle_timeout = std::chrono::seconds(60);
  caf::timespan sweep_interval = std::chrono::seconds(30);
  std::size_t send_queue_limit = 1048576;
  std::uint32_t rate_limit = 100;
  caf::timespan grace_period = std::chrono::milliseconds(100);
  std::size_t max_watched = 1000;
  std::string redis_url;
  std::string key_prefix = "hubnode:";
  std::string node_id;
  caf::timespan heartbeat_interval = std::chrono::seconds(2);
  caf::timespan node_ttl = std::chrono::seconds(10);
  std::size_t history_user_size = 64;
  std::size_t history_size = 100;
  caf::timespan history_ttl = std::chrono::seconds(300);
  std::size_t recover_limit = 300;
  std::size_t max_channels = 64;
};

// Standalone (empty redis.url) or cluster mode.
inline bool cluster_mode(const node_options& opt) {
  return !opt.redis_url.empty();
}

} // namespace hubnode
