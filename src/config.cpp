#include "src/base/log.hpp"

#include "src/config.hpp"

#include "src/redis/url.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <random>
#include <unistd.h>

#include "caf/deep_to_string.hpp"

namespace hubnode {

namespace {

// A default as the INI file and the command line write it: strings quoted,
// lists in brackets, numbers bare.
template <class T>
std::string default_text(const T& value) {
  return caf::deep_to_string(value);
}

// CAF would print 60s as "1min"; the whole number of the largest unit that
// keeps it exact reads as the INI files write durations.
std::string default_text(caf::timespan value) {
  using namespace std::chrono;
  if ((value % seconds{1}).count() == 0)
    return fmt::format("{}s", duration_cast<seconds>(value).count());
  if ((value % milliseconds{1}).count() == 0)
    return fmt::format("{}ms", duration_cast<milliseconds>(value).count());
  if ((value % microseconds{1}).count() == 0)
    return fmt::format("{}us", duration_cast<microseconds>(value).count());
  return fmt::format("{}ns", value.count());
}

} // namespace

// `ref` still holds its default here: the option table is built before any
// configuration is read.
template <class T>
void hubnode_config::add(const char* section, T& ref, const char* key,
                         const char* description) {
  opt_group{custom_options_, section}.add(ref, key, description);
  docs_.push_back({fmt::format("{}.{}", section, key), default_text(ref), description});
}

hubnode_config::hubnode_config() {
  // Warnings and errors reach stderr out of the box (stdout carries only the
  // startup line); no log file unless asked for. Both are overridable.
  set("logger.console", caf::atom("uncolored"));
  set("logger.console-verbosity", caf::atom("warning"));
  set("logger.file-verbosity", caf::atom("quiet"));
  // Actors on the io threads (src/net/io_scheduler.hpp); 'stealing' or
  // 'sharing' give CAF's own schedulers back.
  set("scheduler.policy", caf::atom("io"));
  add("server", opt.host, "host", "listen address");
  add("server", opt.port, "port", "listen port; 0 = any free port");
  add("server", opt.io_threads, "io-threads", "threads running network I/O");
  add("server", opt.max_message_size, "max-message-size",
      "largest accepted frame/HTTP body, bytes");
  add("server", opt.max_connections, "max-connections",
      "node-wide cap (HTTP 503 above it)");
  add("server", opt.max_connections_per_user, "max-connections-per-user",
      "per user on this node (HTTP 429 above it)");
  add("server", opt.handshake_timeout, "handshake-timeout",
      "whole HTTP request + upgrade must arrive in this time");
  add("server", opt.shutdown_timeout, "shutdown-timeout", "graceful shutdown bound");
  add("server", opt.allowed_origins, "allowed-origins",
      "empty = any Origin; else exact matches, others get 403");
  add("server", opt.api_key, "api-key",
      "bearer key for /api/*; empty = /api/* answers 404");
  add("auth", opt.auth_mode, "mode",
      "\"userid\" (identity from the userId query parameter) or \"jwt\"");
  add("auth", opt.jwt_secret, "jwt-secret",
      "HS256 secret; required when auth.mode = \"jwt\"");
  add("hub", opt.ping_interval, "ping-interval",
      "server sends a WebSocket ping this often");
  add("hub", opt.idle_timeout, "idle-timeout",
      "no frame and no pong for this long = stale");
  add("hub", opt.sweep_interval, "sweep-interval",
      "the hub's stale sweep period (a timed message)");
  add("hub", opt.send_queue_limit, "send-queue-limit",
      "bytes queued to one connection before it is closed as a slow consumer");
  add("hub", opt.rate_limit, "rate-limit",
      "messages per second per connection (burst = 2x)");
  add("presence", opt.grace_period, "grace-period",
      "delay before a user whose last connection closed is set offline");
  add("presence", opt.max_watched, "max-watched",
      "users one connection may watch (a watch beyond it gets bad_request)");
  add("redis", opt.redis_url, "url",
      "empty = standalone; else redis://[:password@]host:port[/db]");
  add("redis", opt.key_prefix, "key-prefix", "prefix of every key and channel");
  add("cluster", opt.node_id, "node-id",
      "empty = generated at start (hostname-pid-random)");
  add("cluster", opt.heartbeat_interval, "heartbeat-interval", "node liveness refresh");
  add("cluster", opt.node_ttl, "node-ttl",
      "a node silent this long is dead; its users go offline");
  add("history", opt.history_user_size, "user-size",
      "direct messages kept per user for recovery; 0 = none kept");
  add("history", opt.history_size, "size",
      "publications kept per channel for recovery; 0 = none kept");
  add("history", opt.history_ttl, "ttl",
      "a stream with no new entry for this long is dropped (its epoch then changes)");
  add("history", opt.recover_limit, "recover-limit",
      "most entries one recovery replays; more missed = not recovered");
  add("channels", opt.max_channels, "max-per-connection",
      "subscriptions one connection may hold");
}

std::string hubnode_config::help() const {
  std::string text = "usage: hubnode [--config-file=PATH] [--section.key=value ...]\n\n"
                     "hubnode options (section.key, default):\n";
  for (auto& doc : docs_)
    text += fmt::format("  --{:<34} {:<12} {}\n", doc.key + "=", doc.default_value,
                        doc.description);
  text += "\nCAF's own logger.* and scheduler.* options work as CAF documents them,\n"
          "e.g. --logger.console-verbosity=debug --logger.console=colored.\n"
          "hubnode's default --scheduler.policy=io runs the actors on the\n"
          "server.io-threads; 'stealing' or 'sharing' select CAF's schedulers, where\n"
          "scheduler.max-threads and the rest apply.\n";
  return text;
}

namespace {

bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "-?")
      return true;
  }
  return false;
}

// The node id travels in Redis keys, in JSON and as the first line of every
// cross-node message, so it is one printable word.
bool valid_node_id(const std::string& id) {
  return std::all_of(id.begin(), id.end(),
                     [](unsigned char c) { return c > ' ' && c != 0x7f; });
}

// Values CAF's parser accepts by type but hubnode cannot run with.
std::string check_values(const node_options& opt) {
  using caf::timespan;
  if (opt.auth_mode != "userid" && opt.auth_mode != "jwt")
    return fmt::format("unknown auth.mode \"{}\" (expected \"userid\" or \"jwt\")",
                       opt.auth_mode);
  // The reason names the rule, never the secret.
  if (opt.auth_mode == "jwt" && opt.jwt_secret.empty())
    return "auth.mode = \"jwt\" requires auth.jwt-secret (at least 32 bytes)";
  if (opt.auth_mode == "jwt" && opt.jwt_secret.size() < 32)
    return "auth.jwt-secret must be at least 32 bytes when auth.mode = \"jwt\"";
  if (!opt.redis_url.empty() && !parse_redis_url(opt.redis_url))
    return fmt::format("unparsable redis.url \"{}\" (expected "
                       "redis://[:password@]host:port[/db])",
                       opt.redis_url);
  if (opt.key_prefix.empty())
    return "redis.key-prefix must not be empty";
  if (!valid_node_id(opt.node_id))
    return "cluster.node-id must not contain spaces or control characters";
  if (opt.io_threads == 0)
    return "server.io-threads must be at least 1";
  if (opt.max_message_size == 0)
    return "server.max-message-size must be at least 1";
  if (opt.rate_limit == 0)
    return "hub.rate-limit must be at least 1";
  for (auto [value, name] :
       {std::pair{opt.handshake_timeout, "server.handshake-timeout"},
        std::pair{opt.shutdown_timeout, "server.shutdown-timeout"},
        std::pair{opt.ping_interval, "hub.ping-interval"},
        std::pair{opt.idle_timeout, "hub.idle-timeout"},
        std::pair{opt.sweep_interval, "hub.sweep-interval"},
        std::pair{opt.heartbeat_interval, "cluster.heartbeat-interval"},
        std::pair{opt.node_ttl, "cluster.node-ttl"},
        std::pair{opt.history_ttl, "history.ttl"}})
    if (value <= timespan{0})
      return fmt::format("{} must be positive", name);
  if (!opt.redis_url.empty() && opt.node_ttl <= opt.heartbeat_interval)
    return "cluster.node-ttl must be longer than cluster.heartbeat-interval";
  return {};
}

// CAF falls back to 'stealing' with a warning on a policy it does not know,
// and its 'testing' policy never runs anything on its own.
std::string check_scheduler(const caf::actor_system_config& cfg) {
  auto policy = caf::get_or(cfg, "scheduler.policy", caf::atom("io"));
  for (auto known : {caf::atom("io"), caf::atom("stealing"), caf::atom("sharing")})
    if (policy == known)
      return {};
  return fmt::format("unknown scheduler.policy '{}' (expected 'io', 'stealing' or "
                     "'sharing')",
                     caf::to_string(policy));
}

std::string generate_node_id() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0)
    std::snprintf(host, sizeof(host), "node");
  std::random_device rd;
  return fmt::format("{}-{}-{:08x}", host, getpid(), rd());
}

// CAF ignores INI keys it has no option for and values of the wrong type; a
// misspelt key or a bad value silently running with its default is worse than
// refusing to start.
std::string bad_entry(const caf::config_option_set& opts, const caf::settings& xs,
                      const std::string& prefix = {}) {
  for (auto& [key, value] : xs) {
    auto name = prefix.empty() ? key : prefix + "." + key;
    if (auto section = caf::get_if<caf::settings>(&value)) {
      if (auto found = bad_entry(opts, *section, name); !found.empty())
        return found;
    } else if (auto opt = opts.qualified_name_lookup(name); opt == nullptr) {
      return "unknown option " + name;
    } else if (opt->check(value)) {
      return fmt::format("unparsable value for {}: {}", name, caf::to_string(value));
    }
  }
  return {};
}

std::string config_file_arg(int argc, char** argv) {
  constexpr std::string_view flag = "--config-file=";
  for (int i = 1; i < argc; ++i)
    if (std::string_view arg = argv[i]; arg.substr(0, flag.size()) == flag)
      return std::string{arg.substr(flag.size())};
  return {};
}

} // namespace

std::string hubnode_config::check_config_file(const std::string& path) const {
  auto content = parse_config_file(path.c_str());
  if (!content)
    return fmt::format("cannot read config file {}: {}", path, render(content.error()));
  if (auto bad = bad_entry(custom_options_, *content); !bad.empty())
    return fmt::format("{} in {}", bad, path);
  return {};
}

startup load_config(hubnode_config& cfg, int argc, char** argv, std::string& reason) {
  if (wants_help(argc, argv))
    return startup::help;
  if (auto path = config_file_arg(argc, argv); !path.empty()) {
    reason = cfg.check_config_file(path);
    if (!reason.empty())
      return startup::bad_config;
  }
  if (auto err = cfg.parse(argc, argv)) {
    reason = "bad configuration: " + cfg.render(err);
    return startup::bad_config;
  }
  if (!cfg.remainder.empty()) {
    reason = "unknown argument: " + cfg.remainder.front();
    return startup::bad_config;
  }
  reason = check_values(cfg.opt);
  if (reason.empty())
    reason = check_scheduler(cfg);
  if (!reason.empty())
    return startup::bad_config;
  if (cfg.opt.node_id.empty())
    cfg.opt.node_id = generate_node_id();
  return startup::run;
}

hub_settings make_hub_settings(const node_options& opt) {
  hub_settings s;
  s.node_id = opt.node_id;
  s.max_connections = opt.max_connections;
  s.max_connections_per_user = opt.max_connections_per_user;
  s.ping_interval = opt.ping_interval;
  s.sweep_interval = opt.sweep_interval;
  s.history_user_size = opt.history_user_size;
  s.history_size = opt.history_size;
  s.history_ttl = opt.history_ttl;
  s.recover_limit = opt.recover_limit;
  return s;
}

connection_settings make_connection_settings(const node_options& opt) {
  connection_settings s;
  s.node_id = opt.node_id;
  s.max_channels = opt.max_channels;
  s.idle_timeout = opt.idle_timeout;
  s.send_queue_limit = opt.send_queue_limit;
  s.rate_limit = opt.rate_limit;
  return s;
}

presence_settings make_presence_settings(const node_options& opt) {
  presence_settings s;
  s.grace_period = opt.grace_period;
  s.max_watched = opt.max_watched;
  s.node_id = opt.node_id;
  s.key_prefix = opt.key_prefix;
  s.heartbeat_interval = opt.heartbeat_interval;
  s.node_ttl = opt.node_ttl;
  return s;
}

redis_settings make_redis_settings(const node_options& opt) {
  redis_settings s;
  if (auto endpoint = parse_redis_url(opt.redis_url))
    s.endpoint = std::move(*endpoint);
  s.key_prefix = opt.key_prefix;
  s.node_id = opt.node_id;
  return s;
}

} // namespace hubnode
