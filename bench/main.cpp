// hubnode-bench: a load generator for hubnode over loopback. Parses the
// options, arms the watchdog, runs one scenario and prints one JSON object.
#include "bench/options.hpp"
#include "bench/proc_stats.hpp"
#include "bench/rounded.hpp"
#include "bench/scenarios.hpp"

#include <boost/json/serialize.hpp>

#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <unistd.h>

namespace {

using namespace bench;

// Whatever happens (a node that stops answering, a bug), the run ends
// within --timeout: the kernel delivers SIGALRM even to a blocked process.
extern "C" void watchdog_fired(int) {
  constexpr char msg[] = "hubnode-bench: watchdog: --timeout exceeded\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::_exit(3);
}

void arm_watchdog(seconds_d timeout) {
  struct sigaction action {};
  action.sa_handler = watchdog_fired;
  sigaction(SIGALRM, &action, nullptr);
  alarm(static_cast<unsigned>(timeout.count()) + 1);
}

using scenario_fn = std::function<boost::json::object(const options&)>;

const std::map<std::string, scenario_fn>& scenarios() {
  static const std::map<std::string, scenario_fn> table{
      {"idle", run_idle},       {"pairs", run_traffic},   {"echo", run_traffic},
      {"cluster", run_traffic}, {"churn", run_churn},     {"storm", run_storm},
      {"fanout", run_fanout},   {"recover", run_recover},
  };
  return table;
}

} // namespace

int main(int argc, char** argv) {
  const auto opts = parse_options(argc, argv);
  const auto it = scenarios().find(opts.scenario);
  if (it == scenarios().end()) {
    std::cerr << "hubnode-bench: unknown scenario " << opts.scenario
              << " (idle, pairs, echo, cluster, churn, storm, fanout, recover)\n";
    return 2;
  }
  arm_watchdog(opts.timeout);
  // A node that closes a socket under a write must not kill the generator.
  std::signal(SIGPIPE, SIG_IGN);

  const auto start = std::chrono::steady_clock::now();
  boost::json::object out;
  try {
    out = it->second(opts);
  } catch (const std::exception& e) { // Redis or the watcher unreachable
    std::cerr << "hubnode-bench: " << e.what() << "\n";
    return 1;
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  boost::json::object generator;
  generator["wall_s"] = rounded(wall, 3);
  generator["cpu_s"] = rounded(own_cpu_seconds(), 3);
  generator["cpu_pct"] = rounded(100 * own_cpu_seconds() / wall);
  out["generator"] = std::move(generator);
  out["scenario"] = opts.scenario;
  out["user_base"] = opts.user_base;
  std::cout << boost::json::serialize(out) << std::endl;
  return 0;
}
