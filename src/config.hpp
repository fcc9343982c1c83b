// hubnode's options (SPEC section 1) on top of CAF's own config system, so that
// the INI file, `--section.key=value` and CAF's logger.* / scheduler.* options
// all go through one parser.
#pragma once

#include "src/base/log.hpp"

#include "actors/settings.hpp"
#include "src/base/options.hpp"

#include <string>
#include <vector>

#include "caf/actor_system_config.hpp"

namespace hubnode {

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
    std::string default_value;
    std::string description;
  };

  template <class T>
  void add(const char* section, T& ref, const char* key, const char* description);

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

} // namespace hubnode
