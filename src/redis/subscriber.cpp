#include "src/base/log.hpp"

#include "src/redis/subscriber.hpp"

#include <cerrno>
#include <cstring>
#include <string_view>

#include <hiredis/hiredis.h>

namespace hubnode {

using redis_io::clock;
using redis_io::readiness;
using std::chrono::nanoseconds;

std::string redis_subscription::connect(const redis_endpoint& endpoint,
                                        nanoseconds connect_timeout,
                                        nanoseconds command_timeout) {
  disconnect();
  ctx_ = redis_io::open(endpoint, connect_timeout, command_timeout, error_);
  return error_;
}

void redis_subscription::disconnect() {
  ctx_.reset();
  requested_ = 0;
  confirmed_ = 0;
  error_.clear();
}

void redis_subscription::fail(std::string why) {
  ctx_.reset();
  requested_ = 0;
  confirmed_ = 0;
  error_ = std::move(why);
}

int redis_subscription::fd() const {
  return ctx_ ? ctx_->fd : -1;
}

bool redis_subscription::send(const char* verb,
                              const std::vector<std::string>& channels) {
  if (!ctx_)
    return false;
  if (channels.empty())
    return true; // an empty UNSUBSCRIBE would drop every channel
  redis_command command;
  command.reserve(channels.size() + 1);
  command.emplace_back(verb);
  command.insert(command.end(), channels.begin(), channels.end());
  if (!redis_io::send(ctx_.get(), command)) {
    fail(redis_io::error_of(ctx_.get()));
    return false;
  }
  // Redis confirms each channel separately, subscribed or not.
  requested_ += channels.size();
  return true;
}

bool redis_subscription::subscribe(const std::vector<std::string>& channels) {
  return send("SUBSCRIBE", channels);
}

bool redis_subscription::unsubscribe(const std::vector<std::string>& channels) {
  return send("UNSUBSCRIBE", channels);
}

// The messages among the replies read so far; false when the connection
// broke (and is closed now).
bool redis_subscription::take_replies(std::vector<message>& into) {
  for (;;) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(ctx_.get(), &raw) != REDIS_OK) {
      fail(redis_io::error_of(ctx_.get()));
      return false;
    }
    if (raw == nullptr)
      return true;
    redis_io::reply_ptr reply{static_cast<redisReply*>(raw)};
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
      continue;
    std::string_view kind{reply->element[0]->str, reply->element[0]->len};
    auto text = [&](std::size_t i) {
      auto* element = reply->element[i];
      return element->type == REDIS_REPLY_STRING ? std::string{element->str, element->len}
                                                 : std::string{};
    };
    if (kind == "message")
      into.emplace_back(text(1), text(2));
    else if (kind == "pmessage" && reply->elements >= 4)
      into.emplace_back(text(2), text(3));
    else if (kind.find("subscribe") != std::string_view::npos)
      ++confirmed_;
  }
}

std::vector<redis_subscription::message>
redis_subscription::poll(nanoseconds timeout, const poll_wakeup* wakeup) {
  std::vector<message> result;
  // Later reads only take what is there already: a burst is drained in a few
  // reads without holding the caller for long.
  constexpr int max_reads = 16;
  auto deadline = clock::now() + timeout;
  for (int reads = 0; ctx_ && reads <= max_reads; ++reads) {
    if (!take_replies(result) || reads == max_reads)
      break;
    // Only a call that has nothing yet waits, and only a wait is woken.
    auto waits = reads == 0 && result.empty();
    auto ready = redis_io::wait_readable(ctx_->fd, waits ? deadline : clock::now(),
                                         waits && wakeup ? wakeup->fd() : -1);
    if (ready == readiness::woken)
      wakeup->clear();
    if (ready == readiness::woken || ready == readiness::timeout)
      break;
    if (ready == readiness::error) {
      fail(std::strerror(errno));
      break;
    }
    if (redisBufferRead(ctx_.get()) != REDIS_OK)
      fail(redis_io::error_of(ctx_.get()));
  }
  return result;
}

} // namespace hubnode
