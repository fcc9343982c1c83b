#include "bench/presence_scenario.hpp"

#include "bench/phases.hpp"
#include "bench/window_meter.hpp"

namespace bench {

presence_scenario::presence_scenario(io_runner& io, const options& opts)
    : io_(io), opts_(opts), clients_(io.context(), opts, *this, opts.connections) {}

void presence_scenario::wait_until_back() {
  io_.wait_until([this] { return clients_.welcomed() + given_up_ >= clients_.size(); },
                 from_now(std::chrono::seconds(60)));
}

boost::json::object presence_scenario::run(presence_monitor& monitor) {
  boost::json::object out;
  out["connect"] =
      connect_all(io_, clients_, spread_over_urls(clients_.size(), opts_.urls.size()));
  const auto offline_before = monitor.offline_events();

  window_meter meter(opts_.pids);
  disturb(out);
  out["measured"] = meter.finish(0);
  io_.call([&] { clients_.report_failures(out); });

  // Late offline events (from Redis, or the node's grace timers) get --settle,
  // at least 1 s, to arrive before they are counted.
  pause(std::max(opts_.settle, seconds_d(1)));
  boost::json::object presence;
  presence["source"] = monitor.source();
  presence["flaps"] = monitor.offline_events() - offline_before;
  presence["not_online"] = monitor.not_online();
  out["errors"] =
      out["connection_failures"].as_uint64() + presence["not_online"].as_uint64();
  out["flaps"] = presence["flaps"];
  out["presence"] = std::move(presence);
  io_.call([this] { clients_.abort_all(); });
  return out;
}

} // namespace bench
