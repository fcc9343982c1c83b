// Steps every scenario takes on the main thread around its own measurement.
#pragma once

#include "bench/fleet.hpp"
#include "bench/io_runner.hpp"

#include <boost/json/object.hpp>

namespace bench {

using slot_urls = std::vector<std::pair<std::size_t, std::size_t>>;

// Every slot with the index of its --url: slot % number of urls.
slot_urls spread_over_urls(std::size_t slots, std::size_t urls);

// Queues the slots for connection and waits until all are welcomed, or no
// handshake is left, or a deadline that grows with their number passes.
// Returns {"connected","failed","seconds","per_s"} for the report.
boost::json::object connect_all(io_runner& io, fleet& clients, const slot_urls& slots);

// Sleeps the calling (main) thread for a duration given in seconds.
void pause(seconds_d how_long);

// Adds how the load was offered: "mode" (open or closed) with
// "offered_per_s" or "window".
void report_load(boost::json::object& out, const options& opts);

// Runs a scenario constructed from (io_runner&, const options&) with a
// run() returning its report, on a loop of its own.
template <class Scenario>
boost::json::object run_on_own_loop(const options& opts) {
  io_runner io;
  Scenario scenario(io, opts);
  auto results = scenario.run();
  io.stop(); // before the scenario's sockets and timers go
  return results;
}

} // namespace bench
