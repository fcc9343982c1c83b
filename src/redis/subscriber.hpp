// The pub/sub connection to Redis: a plain class with no actor state, owned
// by the subscriber actor (actors/redis_subscriber.cpp), which may block on
// its thread.
#pragma once

#include "src/redis/context.hpp"
#include "src/redis/wakeup.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hubnode {

// SUBSCRIBE/UNSUBSCRIBE go out at once, and poll() hands back what arrived
// on subscribed channels.
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

  // Waits up to `timeout` for data, or until `wakeup` is notified (which
  // this clears), then returns every complete message. Confirmations are
  // consumed silently (they only count in confirmed()). A broken connection
  // is closed: connected() turns false, error() says why, and the messages
  // read before the break are still returned.
  std::vector<message> poll(std::chrono::nanoseconds timeout,
                            const poll_wakeup* wakeup = nullptr);

  // Channels sent in SUBSCRIBE/UNSUBSCRIBE on this connection, and the
  // confirmations received so far. Redis confirms each channel, in order, so
  // once confirmed() reaches what requested() was after a command, that
  // command is in effect.
  std::uint64_t requested() const { return requested_; }
  std::uint64_t confirmed() const { return confirmed_; }

private:
  bool send(const char* verb, const std::vector<std::string>& channels);
  void fail(std::string why);
  bool take_replies(std::vector<message>& into);

  redis_io::context_ptr ctx_;
  std::string error_;
  std::uint64_t requested_ = 0;
  std::uint64_t confirmed_ = 0;
};

} // namespace hubnode
