// CPU and wall time over a measured window: the benchmark's own (is the
// generator the bottleneck?) and the nodes' (CPU per delivered message).
#pragma once

#include "bench/io_runner.hpp"

#include <boost/json/object.hpp>

#include <sys/types.h>
#include <vector>

namespace bench {

class window_meter {
public:
  // Starts the window now.
  explicit window_meter(std::vector<pid_t> pids);

  double elapsed_seconds() const;
  // {"seconds", "generator_cpu_pct", and with --pid "node_cpu_pct" (of one
  // core, summed over the nodes) and "node_cpu_us_per_msg" when delivered > 0}
  boost::json::object finish(std::uint64_t delivered) const;

private:
  std::vector<pid_t> pids_;
  clock::time_point start_;
  double own_cpu_;
  double node_cpu_;
};

} // namespace bench
