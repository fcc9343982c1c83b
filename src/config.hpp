// hubnode's options (SPEC section 1) on top of CAF's own config system, so that
// the INI file, `--section.key=value` and CAF's logger.* / scheduler.* options
// all go through one parser.
#pragma once

#include "src/log.hpp"

#include "actors/settings.hpp"

#include <string>
#include <vector>

#include "caf/actor_system_config.hpp"

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
};

class hubnode_config : public caf::actor_system_config {
public:
  node_options opt;

  hubnode_config();

  // Text for `hubnode --help`: every hubnode option with its default.
  std::string help() const;

  // Why the INI file at `path` cannot be used (unreadable, unknown key), or "".
  std::string check_config_file(const std::string& path) const;

private:
  struct option_doc {
    std::string key;
    std::string fallback;
    std::string description;
  };

  template <class T>
  void add(const char* section, T& ref, const char* key, const char* fallback,
           const char* description);

  std::vector<option_doc> docs_;
};

// The outcome of reading the command line and config file.
enum class startup { run, help, bad_config };

// Parses argv into `cfg`, validates the values, fills in a generated node id.
// On bad_config, `reason` holds one line for stderr.
startup load_config(hubnode_config& cfg, int argc, char** argv, std::string& reason);

hub_settings make_hub_settings(const node_options& opt);
connection_settings make_connection_settings(const node_options& opt);
presence_settings make_presence_settings(const node_options& opt);
// Cluster mode only (redis.url set and valid, as load_config checks).
redis_settings make_redis_settings(const node_options& opt);

// Standalone (empty redis.url) or cluster mode.
inline bool cluster_mode(const node_options& opt) {
  return !opt.redis_url.empty();
}

} // namespace hubnode
