#include "bench/phases.hpp"

#include "bench/rounded.hpp"

#include <thread>

namespace bench {

slot_urls spread_over_urls(std::size_t slots, std::size_t urls) {
  slot_urls out;
  out.reserve(slots);
  for (std::size_t slot = 0; slot < slots; ++slot)
    out.emplace_back(slot, slot % urls);
  return out;
}

boost::json::object connect_all(io_runner& io, fleet& clients, const slot_urls& slots) {
  // 30 s plus 5 ms per connection: far beyond any healthy node on loopback.
  const auto budget =
      std::chrono::seconds(30) + std::chrono::milliseconds(5) * slots.size();
  const auto start = clock::now();
  io.call([&] { clients.connect_queued(slots); });
  io.wait_until(
      [&] { return clients.welcomed() == slots.size() || clients.pending() == 0; },
      start + budget);
  const double took = std::chrono::duration<double>(clock::now() - start).count();
  const auto [connected, failed] =
      io.call([&] { return std::make_pair(clients.welcomed(), clients.failures()); });
  boost::json::object out;
  out["connected"] = connected;
  out["failed"] = failed;
  out["seconds"] = rounded(took, 3);
  out["per_s"] = rounded(static_cast<double>(connected) / took);
  return out;
}

void pause(seconds_d how_long) {
  std::this_thread::sleep_for(how_long);
}

void report_load(boost::json::object& out, const options& opts) {
  out["mode"] = opts.rate > 0 ? "open" : "closed";
  if (opts.rate > 0)
    out["offered_per_s"] = opts.rate;
  else
    out["window"] = opts.window;
}

} // namespace bench
