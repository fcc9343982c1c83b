// The event loop on a thread of its own, so that a scenario reads as a
// sequence of phases on the main thread (connect, wait, measure) while every
// socket and every counter lives on the loop's thread. The main thread only
// touches them through call().
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <future>
#include <thread>
#include <type_traits>

namespace bench {

namespace net = boost::asio;
using clock = std::chrono::steady_clock;

// The time point `d` from now, for any duration type (seconds as doubles too).
template <class Rep, class Period>
clock::time_point from_now(std::chrono::duration<Rep, Period> d) {
  return clock::now() + std::chrono::duration_cast<clock::duration>(d);
}

class io_runner {
public:
  io_runner();
  ~io_runner();
  io_runner(const io_runner&) = delete;
  io_runner& operator=(const io_runner&) = delete;

  net::io_context& context() { return io_; }

  // Stops the loop and joins its thread. Whatever holds sockets or timers of
  // this loop may be destroyed on the main thread only after this.
  void stop();

  // Runs f on the loop's thread and returns its result. Bounded by the
  // loop staying responsive, which the process watchdog backs up.
  template <class F>
  auto call(F f) -> std::invoke_result_t<F> {
    std::packaged_task<std::invoke_result_t<F>()> task(std::move(f));
    auto result = task.get_future();
    net::post(io_, [&task] { task(); });
    return result.get();
  }

  // Polls pred (on the loop's thread) every few milliseconds until it holds
  // or `deadline` passes; returns whether it held.
  template <class Pred>
  bool wait_until(Pred pred, clock::time_point deadline) {
    for (;;) {
      if (call(pred))
        return true;
      if (clock::now() >= deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

private:
  net::io_context io_{1};
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::thread thread_;
};

} // namespace bench
