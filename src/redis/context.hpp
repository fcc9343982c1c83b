// The hiredis context under both Redis connections (commands.hpp,
// subscriber.hpp): connecting with the handshake, and blocking I/O that
// keeps to a deadline. Errors never throw: they come back as a reason.
#pragma once

#include "src/redis/types.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <utility>

struct redisContext;
struct redisReply;

namespace hubnode {

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

namespace redis_io {

using clock = std::chrono::steady_clock;

struct context_deleter {
  void operator()(redisContext* ctx) const;
};

using context_ptr = std::unique_ptr<redisContext, context_deleter>;

struct reply_deleter {
  void operator()(redisReply* reply) const;
};

using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// A connected context that ran AUTH and SELECT when the endpoint has them,
// then PING; or nothing and the reason, which never holds the password.
context_ptr open(const redis_endpoint& endpoint, std::chrono::nanoseconds connect_timeout,
                 std::chrono::nanoseconds command_timeout, std::string& why);

// hiredis' reason for the context's last error.
std::string error_of(const redisContext* ctx);

// Sends one command, binary-safe, without reading anything. The socket has
// SO_SNDTIMEO set to the command timeout, so a stuck server fails the write
// in bounded time.
bool send(redisContext* ctx, const redis_command& command);

// Sends every command and reads every reply, all within `timeout`. A failure
// leaves the connection out of step: the caller must close it.
redis_result exchange(redisContext* ctx, const redis_pipeline& pipeline,
                      std::chrono::nanoseconds timeout);

enum class readiness { readable, woken, timeout, error };

// Waits until the socket has data or `deadline` (a deadline in the past
// still looks once). With a `wake_fd` (>= 0), a readable wake_fd ends the
// wait early as `woken`. `error` leaves the reason in errno.
readiness wait_readable(int fd, clock::time_point deadline, int wake_fd = -1);

} // namespace redis_io

} // namespace hubnode
