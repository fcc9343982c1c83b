#include "bench/window_meter.hpp"

#include "bench/rounded.hpp"

namespace bench {

window_meter::window_meter(std::vector<pid_t> pids)
    : pids_(std::move(pids)), start_(clock::now()), own_cpu_(own_cpu_seconds()),
      node_cpu_(cpu_times(pids_)) {}

double window_meter::elapsed_seconds() const {
  return std::chrono::duration<double>(clock::now() - start_).count();
}

boost::json::object window_meter::finish(std::uint64_t delivered) const {
  const double wall = elapsed_seconds();
  const auto per_msg = [delivered](double seconds) {
    return rounded(1e6 * seconds / static_cast<double>(delivered), 2);
  };
  boost::json::object out;
  out["seconds"] = rounded(wall, 3);
  const double own = own_cpu_seconds() - own_cpu_;
  out["generator_cpu_pct"] = rounded(100 * own / wall);
  if (delivered > 0)
    out["generator_cpu_us_per_msg"] = per_msg(own);
  if (pids_.empty())
    return out;
  const auto now = cpu_times(pids_);
  const cpu_time node{now.user - node_cpu_.user, now.system - node_cpu_.system};
  out["node_cpu_pct"] = rounded(100 * node.total() / wall);
  out["node_user_pct"] = rounded(100 * node.user / wall);
  out["node_sys_pct"] = rounded(100 * node.system / wall);
  if (delivered > 0) {
    out["node_cpu_us_per_msg"] = per_msg(node.total());
    out["node_user_us_per_msg"] = per_msg(node.user);
    out["node_sys_us_per_msg"] = per_msg(node.system);
  }
  return out;
}

} // namespace bench
