// Blocking Redis clients on hiredis: plain classes with no actor state, owned
// each by one detached actor (actors/redis.cpp) that may block on its thread.
//
// Errors never throw: a failed connect or command leaves a reason string and a
// closed connection, and the owner decides when to connect again.
#pragma once

#include "src/redis/types.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

struct redisContext;

namespace hubnode {

// redis://[:password@]host:port[/db]: host a name, an IPv4 address or an
// [IPv6] address; port 1-65535 required; db digits, 0 when absent. The
// password may be percent-encoded. Nothing when the URL is anything else
// (other schemes, a user name, a query string, missing port).
std::optional<redis_endpoint> parse_redis_url(std::string_view url);

// The outcome of a pipeline: every reply in order (Redis error replies among
// them), or why there are none (I/O error, timeout, closed connection).
struct redis_result {
  redis_replies replies;
  std::string error; // empty on success

  bool ok() const { return error.empty(); }
  explicit operator bool() const { return ok(); }

  static redis_result failure(std::string why) {
    redis_result result;
    result.error = why.empty() ? std::string{"unknown error"} : std::move(why);
    return result;
  }
};

namespace detail {

struct redis_context_deleter {
  void operator()(redisContext* ctx) const;
};

using redis_context_ptr = std::unique_ptr<redisContext, redis_context_deleter>;

} // namespace detail

// The hex SHA1 of a Lua script, as EVALSHA and SCRIPT LOAD know it.
std::string redis_script_sha(std::string_view lua);

// One command connection. Pipelines are sent in one write and their replies
// read under the command timeout; any I/O error or timeout closes the
// connection (its reply stream would be out of step), and the caller
// connects again.
class redis_connection {
public:
  redis_connection() = default;
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;
  redis_connection(redis_connection&&) = default;
  redis_connection& operator=(redis_connection&&) = default;

  // Connects, dropping any previous connection, and runs AUTH and SELECT when
  // the endpoint has them, then PING. Empty on success, else the reason.
  std::string connect(const redis_endpoint& endpoint,
                      std::chrono::nanoseconds connect_timeout,
                      std::chrono::nanoseconds command_timeout);

  bool connected() const { return ctx_ != nullptr; }

  void disconnect();

  // Looks at the idle connection without sending anything: a server that
  // closed it meanwhile (a restart) shows here. Empty when it is fine, else
  // the reason, and the connection is closed.
  std::string probe();

  // Runs the pipeline in one round trip (two when a script was missing).
  // A command {"EVALSCRIPT", lua, numkeys, keys..., args...} runs as EVALSHA
  // of the script's SHA1: scripts this connection has not loaded yet are
  // loaded in front of the pipeline (SCRIPT LOAD), and a NOSCRIPT reply (the
  // script cache was flushed meanwhile) loads them and retries those commands
  // once, so callers never see NOSCRIPT. Their replies stay in pipeline order.
  redis_result run(const redis_pipeline& pipeline);

private:
  redis_result attempt(const redis_pipeline& pipeline,
                       const std::vector<std::size_t>& indexes, redis_replies& replies,
                       std::vector<std::size_t>& missing);
  bool is_loaded(const std::string& sha) const;
  redis_result fail(std::string why);
  const std::string& sha_of(const std::string& lua);

  detail::redis_context_ptr ctx_;
  std::chrono::nanoseconds command_timeout_{std::chrono::seconds(1)};
  // script text -> SHA1, so each script is hashed once
  std::unordered_map<std::string, std::string> shas_;
  // SHA1s loaded on the current connection (a new connection starts empty,
  // since the server may have restarted without its script cache)
  std::vector<std::string> loaded_;
};

// The pub/sub connection: SUBSCRIBE/UNSUBSCRIBE go out at once, and poll()
// hands back what arrived on subscribed channels.
class redis_subscription {
public:
  using message = std::pair<std::string, std::string>; // channel, payload

  redis_subscription() = default;
  redis_subscription(const redis_subscription&) = delete;
  redis_subscription& operator=(const redis_subscription&) = delete;
  redis_subscription(redis_subscription&&) = default;
  redis_subscription& operator=(redis_subscription&&) = default;

  // As redis_connection::connect.
  std::string connect(const redis_endpoint& endpoint,
                      std::chrono::nanoseconds connect_timeout,
                      std::chrono::nanoseconds command_timeout);

  bool connected() const { return ctx_ != nullptr; }

  void disconnect();

  // The reason of the last failure (connection closed since).
  const std::string& error() const { return error_; }

  // Send the command; its confirmations arrive through poll(). False when
  // the connection broke (and is closed now). Empty lists send nothing.
  bool subscribe(const std::vector<std::string>& channels);
  bool unsubscribe(const std::vector<std::string>& channels);

  // The socket, -1 when not connected.
  int fd() const;

  // Waits up to `timeout` for data, then returns every complete message.
  // Confirmations are consumed silently (they only count in confirmed()). A broken
  // connection is closed: connected() turns false, error() says why, and the
  // messages read before the break are still returned.
  std::vector<message> poll(std::chrono::nanoseconds timeout);

  // Channels sent in SUBSCRIBE/UNSUBSCRIBE on this connection, and the
  // confirmations received so far. Redis confirms each channel, in order, so
  // once confirmed() reaches what requested() was after a command, that
  // command is in effect.
  std::uint64_t requested() const { return requested_; }
  std::uint64_t confirmed() const { return confirmed_; }

private:
  bool send(const char* verb, const std::vector<std::string>& channels);
  void fail(std::string why);

  detail::redis_context_ptr ctx_;
  std::string error_;
  std::uint64_t requested_ = 0;
  std::uint64_t confirmed_ = 0;
};

} // namespace hubnode
