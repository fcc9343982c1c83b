// What churn and storm share: connect the users, disturb them (the
// scenario's own part), then check presence: no offline event for a user
// that came back in time, and every user online at the end.
#pragma once

#include "bench/fleet.hpp"
#include "bench/io_runner.hpp"
#include "bench/presence_monitor.hpp"

#include <boost/json/object.hpp>

namespace bench {

class presence_scenario : public fleet::handler {
public:
  // {"connect", the scenario's figures, "measured", "connection_failures",
  //  "failure_reasons", "presence": {"source","flaps","not_online"}, "flaps",
  //  "errors" (connection failures + users not online at the end)}
  boost::json::object run(presence_monitor& monitor);

protected:
  presence_scenario(io_runner& io, const options& opts);
  ~presence_scenario() = default;

  // Runs on the main thread once every user is connected; returns when the
  // users should all be back, having added the scenario's figures to out.
  virtual void disturb(boost::json::object& out) = 0;

  // Waits until every user is welcomed again or has been given up on, for at
  // most a minute (then the report says how many came back).
  void wait_until_back();

  io_runner& io_;
  const options& opts_;
  fleet clients_;              // slot = user - --user-base
  std::uint64_t given_up_ = 0; // users that ran out of --retries (loop's thread)
};

// Runs a presence_scenario constructed from (io_runner&, const options&),
// watching users --user-base .. + --connections.
template <class Scenario>
boost::json::object run_with_monitor(const options& opts) {
  io_runner io;
  auto monitor = start_monitor(io, opts, opts.user_base, opts.connections);
  Scenario scenario(io, opts);
  auto out = scenario.run(*monitor);
  io.stop(); // before the sockets and timers go
  return out;
}

} // namespace bench
