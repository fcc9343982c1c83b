#include "bench/pacer.hpp"

namespace bench {

namespace {

// Sends due since the last tick go out together.
constexpr auto tick_period = std::chrono::milliseconds(1);

} // namespace

void pacer::start(double rate, std::int64_t start_ns, clock_fn now_ns, send_fn send) {
  interval_ns_ = 1e9 / rate;
  start_ns_ = start_ns;
  now_ns_ = std::move(now_ns);
  send_ = std::move(send);
  running_ = true;
  scheduled_ = 0;
  tick();
}

void pacer::stop() {
  running_ = false;
  timer_.cancel();
}

void pacer::tick() {
  if (!running_)
    return;
  const auto due = static_cast<std::uint64_t>(static_cast<double>(now_ns_() - start_ns_) /
                                              interval_ns_) +
                   1;
  for (; scheduled_ < due; ++scheduled_)
    send_(scheduled_, start_ns_ + static_cast<std::int64_t>(
                                      static_cast<double>(scheduled_) * interval_ns_));
  timer_.expires_after(tick_period);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec)
      tick();
  });
}

} // namespace bench
