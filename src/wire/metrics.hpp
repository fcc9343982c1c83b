// /metrics (SPEC section 6): the node's stats in the Prometheus text
// exposition format 0.0.4.
#pragma once

#include "src/base/stats.hpp"

#include <cstddef>
#include <string>

namespace hubnode {

// Every metric of SPEC section 6 with its HELP and TYPE lines, and every
// label value even while its count is zero, so that rate() and dashboards
// see a series from the first scrape on.
std::string render_metrics(const stats& st, std::size_t actors_running);

} // namespace hubnode
