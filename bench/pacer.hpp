// An open loop's schedule: item j is due at start + j / rate, whatever the
// node does. A timer ticks every millisecond and hands out every item due
// since the last tick, each with its own scheduled time, so that latency is
// measured from when a send was due, not from when the generator got to it
// (no coordinated omission). Lives on the io_runner's thread.
#pragma once

#include "bench/io_runner.hpp"

#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <functional>

namespace bench {

class pacer {
public:
  // send(j, scheduled_ns) for item j; now_ns() on the same clock as start_ns.
  using send_fn = std::function<void(std::uint64_t, std::int64_t)>;
  using clock_fn = std::function<std::int64_t()>;

  explicit pacer(net::io_context& io) : timer_(io) {}

  void start(double rate, std::int64_t start_ns, clock_fn now_ns, send_fn send);
  void stop();

private:
  void tick();

  net::steady_timer timer_;
  double interval_ns_ = 0;
  std::int64_t start_ns_ = 0;
  clock_fn now_ns_;
  send_fn send_;
  bool running_ = false;
  std::uint64_t scheduled_ = 0; // items due so far
};

} // namespace bench
