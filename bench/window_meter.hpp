// CPU and wall time over a measured window: the benchmark's own (is the
// generator the bottleneck?) and the nodes' (CPU per delivered message).
#pragma once

#include "bench/io_runner.hpp"
#include "bench/proc_stats.hpp"

#include <boost/json/object.hpp>

#include <sys/types.h>
#include <vector>

namespace bench {

class window_meter {
public:
  // Starts the window now.
  explicit window_meter(std::vector<pid_t> pids);

  double elapsed_seconds() const;
  // {"seconds", "generator_cpu_pct", and when delivered > 0
  // "generator_cpu_us_per_msg"; with --pid "node_cpu_pct" (of one core,
  // summed over the nodes), its parts "node_user_pct" and "node_sys_pct",
  // and when delivered > 0 "node_cpu_us_per_msg", "node_user_us_per_msg"
  // and "node_sys_us_per_msg"}. A message is whatever the scenario counts as
  // delivered (fanout: one publication received by one subscriber).
  boost::json::object finish(std::uint64_t delivered) const;

private:
  std::vector<pid_t> pids_;
  clock::time_point start_;
  double own_cpu_;
  cpu_time node_cpu_;
};

} // namespace bench
