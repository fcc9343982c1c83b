#include "src/base/log.hpp"

#include "src/redis/context.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include <hiredis/hiredis.h>
#include <poll.h>

namespace hubnode::redis_io {

using std::chrono::nanoseconds;

void context_deleter::operator()(redisContext* ctx) const {
  redisFree(ctx);
}

void reply_deleter::operator()(redisReply* reply) const {
  freeReplyObject(reply);
}

std::string error_of(const redisContext* ctx) {
  return ctx->errstr[0] != '\0' ? std::string{ctx->errstr} : std::string{"I/O error"};
}

namespace {

redis_reply convert(const redisReply* reply) {
  redis_reply result;
  switch (reply->type) {
  case REDIS_REPLY_STRING:
    result.type = redis_reply::kind::string;
    result.str.assign(reply->str, reply->len);
    break;
  case REDIS_REPLY_STATUS:
    result.type = redis_reply::kind::status;
    result.str.assign(reply->str, reply->len);
    break;
  case REDIS_REPLY_ERROR:
    result.type = redis_reply::kind::error;
    result.str.assign(reply->str, reply->len);
    break;
  case REDIS_REPLY_INTEGER:
    result.type = redis_reply::kind::integer;
    result.integer = reply->integer;
    break;
  case REDIS_REPLY_ARRAY:
    result.type = redis_reply::kind::array;
    result.elements.reserve(reply->elements);
    for (std::size_t i = 0; i < reply->elements; ++i)
      result.elements.push_back(convert(reply->element[i]));
    break;
  default:
    result.type = redis_reply::kind::nil;
    break;
  }
  return result;
}

// hiredis takes timevals; 0 would mean "no timeout" to setsockopt.
timeval to_timeval(nanoseconds timeout) {
  auto us = std::max<std::int64_t>(
      1000, std::chrono::duration_cast<std::chrono::microseconds>(timeout).count());
  return timeval{static_cast<time_t>(us / 1000000),
                 static_cast<suseconds_t>(us % 1000000)};
}

// Queues one command in hiredis' output buffer, binary-safe.
bool append(redisContext* ctx, const redis_command& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (auto& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  return redisAppendCommandArgv(ctx, static_cast<int>(args.size()), argv.data(),
                                lengths.data()) == REDIS_OK;
}

// Writes the whole output buffer.
bool flush(redisContext* ctx) {
  int done = 0;
  do {
    if (redisBufferWrite(ctx, &done) != REDIS_OK)
      return false;
  } while (done == 0);
  return true;
}

// The next reply, reading from the socket until `deadline`; nothing (and the
// reason in `why`) on a broken connection or a timeout.
reply_ptr read_reply(redisContext* ctx, clock::time_point deadline, std::string& why) {
  for (;;) {
    void* reply = nullptr;
    if (redisGetReplyFromReader(ctx, &reply) != REDIS_OK) {
      why = error_of(ctx);
      return nullptr;
    }
    if (reply != nullptr)
      return reply_ptr{static_cast<redisReply*>(reply)};
    auto ready = wait_readable(ctx->fd, deadline);
    if (ready != readiness::readable) {
      why = ready == readiness::timeout ? "command timeout" : std::strerror(errno);
      return nullptr;
    }
    if (redisBufferRead(ctx) != REDIS_OK) {
      why = error_of(ctx);
      return nullptr;
    }
  }
}

} // namespace

bool send(redisContext* ctx, const redis_command& command) {
  return append(ctx, command) && flush(ctx);
}

readiness wait_readable(int fd, clock::time_point deadline, int wake_fd) {
  for (;;) {
    auto left = std::max(nanoseconds::zero(), deadline - clock::now());
    // Rounded up, so that a sub-millisecond rest is not a busy loop.
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  left + std::chrono::microseconds(999))
                  .count();
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    auto n = ::poll(fds, wake_fd >= 0 ? 2 : 1,
                    static_cast<int>(std::min<std::int64_t>(ms, INT_MAX)));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return readiness::error;
    if (fds[0].revents != 0)
      return readiness::readable;
    if (n > 0)
      return readiness::woken;
    if (clock::now() >= deadline)
      return readiness::timeout;
  }
}

redis_result exchange(redisContext* ctx, const redis_pipeline& pipeline,
                      nanoseconds timeout) {
  for (auto& command : pipeline)
    if (!append(ctx, command))
      return redis_result::failure(error_of(ctx));
  if (!flush(ctx))
    return redis_result::failure(error_of(ctx));
  auto deadline = clock::now() + timeout;
  redis_result result;
  result.replies.reserve(pipeline.size());
  for (std::size_t i = 0; i < pipeline.size(); ++i) {
    std::string why;
    auto reply = read_reply(ctx, deadline, why);
    if (!reply)
      return redis_result::failure(std::move(why));
    result.replies.push_back(convert(reply.get()));
  }
  return result;
}

context_ptr open(const redis_endpoint& endpoint, nanoseconds connect_timeout,
                 nanoseconds command_timeout, std::string& why) {
  auto where = endpoint.host + ":" + std::to_string(endpoint.port);
  context_ptr ctx{redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port,
                                          to_timeval(connect_timeout))};
  if (!ctx) {
    why = "connect to " + where + ": out of memory";
    return nullptr;
  }
  if (ctx->err != 0) {
    why = "connect to " + where + ": " + error_of(ctx.get());
    return nullptr;
  }
  if (redisSetTimeout(ctx.get(), to_timeval(command_timeout)) != REDIS_OK) {
    why = "connect to " + where + ": " + error_of(ctx.get());
    return nullptr;
  }
  redis_pipeline handshake;
  if (!endpoint.password.empty())
    handshake.push_back({"AUTH", endpoint.password});
  if (endpoint.db != 0)
    handshake.push_back({"SELECT", std::to_string(endpoint.db)});
  // Proves that the server answers commands (not LOADING, not protected).
  handshake.push_back({"PING"});
  auto result = exchange(ctx.get(), handshake, command_timeout);
  if (!result) {
    why = where + ": " + result.error;
    return nullptr;
  }
  for (std::size_t i = 0; i < handshake.size(); ++i) {
    if (result.replies[i].is_error()) {
      // handshake[i][0] only: the AUTH argument is the password.
      why = where + ": " + handshake[i][0] + " failed: " + result.replies[i].str;
      return nullptr;
    }
  }
  return ctx;
}

} // namespace hubnode::redis_io
