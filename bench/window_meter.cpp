#include "bench/window_meter.hpp"

#include "bench/proc_stats.hpp"
#include "bench/rounded.hpp"

namespace bench {

window_meter::window_meter(std::vector<pid_t> pids)
    : pids_(std::move(pids)), start_(clock::now()), own_cpu_(own_cpu_seconds()),
      node_cpu_(cpu_seconds(pids_)) {}

double window_meter::elapsed_seconds() const {
  return std::chrono::duration<double>(clock::now() - start_).count();
}

boost::json::object window_meter::finish(std::uint64_t delivered) const {
  const double wall = elapsed_seconds();
  boost::json::object out;
  out["seconds"] = rounded(wall, 3);
  out["generator_cpu_pct"] = rounded(100 * (own_cpu_seconds() - own_cpu_) / wall);
  if (!pids_.empty()) {
    const double node = cpu_seconds(pids_) - node_cpu_;
    out["node_cpu_pct"] = rounded(100 * node / wall);
    if (delivered > 0)
      out["node_cpu_us_per_msg"] =
          rounded(1e6 * node / static_cast<double>(delivered), 2);
  }
  return out;
}

} // namespace bench
