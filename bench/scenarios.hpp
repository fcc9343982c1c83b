// The scenarios; each returns its results as one JSON object (the caller adds
// what every run reports) and is bounded in count and time by its options.
#pragma once

#include "bench/options.hpp"

#include <boost/json/object.hpp>

namespace bench {

boost::json::object run_idle(const options& opts);
// pairs, echo and cluster: traffic between users, closed or open loop.
boost::json::object run_traffic(const options& opts);
boost::json::object run_churn(const options& opts);
boost::json::object run_storm(const options& opts);
// fanout: one channel, many subscribers, one publisher.
boost::json::object run_fanout(const options& opts);
// recover: users reconnecting at once with their stream positions.
boost::json::object run_recover(const options& opts);

} // namespace bench
