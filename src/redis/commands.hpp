// The command connection to Redis: a plain class with no actor state, owned
// by the redis actor (actors/redis_commands.cpp), which may block on its
// thread.
#pragma once

#include "src/redis/context.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hubnode {

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

  redis_io::context_ptr ctx_;
  std::chrono::nanoseconds command_timeout_{std::chrono::seconds(1)};
  // script text -> SHA1, so each script is hashed once
  std::unordered_map<std::string, std::string> shas_;
  // SHA1s loaded on the current connection (a new connection starts empty,
  // since the server may have restarted without its script cache)
  std::vector<std::string> loaded_;
};

} // namespace hubnode
