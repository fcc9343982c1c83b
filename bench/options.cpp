#include "bench/options.hpp"

#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <stdexcept>

namespace bench {

namespace {

constexpr const char* usage =
    R"(usage: hubnode-bench SCENARIO --url=ws://127.0.0.1:PORT/ws [options]

scenarios:
  idle     N connections held open: connect rate, node RSS per connection, a
           sample still answering pings after the hold
  pairs    N/2 pairs of users sending to each other
  echo     N users each sending to itself
  cluster  pairs whose partners sit on different nodes (two or more --url)
  churn    users reconnecting within the grace period, cycle after cycle:
           presence flaps and presence against the truth at the end
  storm    every client dropped at once, then reconnecting with jittered
           backoff: time until all are welcomed again, flaps
  fanout   one channel: N subscribers and one publisher (closed loop, or
           --rate publications/s): deliveries/s, publish-to-delivery latency,
           losses and order, CPU per delivery
  recover  N users disconnect, miss --backlog messages each, reconnect at
           once with their positions: time until all recovered, exactness

options (--name=value or --name value):
  --url=URL            a node, ws://LOOPBACK:PORT[/path]; repeat for several nodes
  --pid=PID            a node process to measure (RSS, CPU); repeatable
  --redis=URL          redis://LOOPBACK:PORT: cluster mode, presence events from Redis
  --key-prefix=P       redis.key-prefix of the nodes (hubnode:)
  --connections=N      clients (100)
  --user-base=U        first user id (derived from the clock)
  --duration=S         measured window in seconds (5)
  --rate=R             open loop: messages/s offered in total (fanout:
                       publications/s; 0 = closed loop)
  --window=W           closed loop: messages in flight per connection (fanout:
                       publications in flight) (8)
  --size=B             padding bytes per message (0)
  --hold=S             idle: seconds held before sampling (2)
  --sample=K           idle: connections that must answer a ping (100)
  --settle=S           pause after connecting (cluster: 1.2)
  --drain=S            wait for messages and acks in flight after the window (5)
  --concurrency=C      handshakes in flight at once (256)
  --cycles=C           churn: reconnections per user at most (1000)
  --hold-ms=MS         churn: time between a welcome and the next close (50)
  --reconnect-delay-ms=MS  churn: pause between close and reconnect (0)
  --jitter-ms=MS       storm: largest random reconnect delay (50)
  --retries=K          storm: further attempts per client (8)
  --per-process=N      idle: connections per process (from RLIMIT_NOFILE)
  --backlog=M          recover: messages each user misses (50)
  --timeout=S          hard watchdog for the whole run (derived)
)";

[[noreturn]] void die(const std::string& why) {
  std::cerr << "hubnode-bench: " << why << "\n\n" << usage;
  std::exit(2);
}

std::uint64_t to_count(const std::string& value) {
  std::size_t used = 0;
  const auto n = std::stoull(value, &used);
  if (used != value.size() || value.front() == '-')
    throw std::invalid_argument(value);
  return n;
}

double to_positive(const std::string& value) {
  std::size_t used = 0;
  const auto d = std::stod(value, &used);
  if (used != value.size() || !(d >= 0))
    throw std::invalid_argument(value);
  return d;
}

using setter = std::function<void(options&, const std::string&)>;

setter count(std::uint64_t options::*field) {
  return [field](options& o, const std::string& v) { o.*field = to_count(v); };
}

setter secs(seconds_d options::*field) {
  return
      [field](options& o, const std::string& v) { o.*field = seconds_d(to_positive(v)); };
}

const std::map<std::string, setter>& setters() {
  static const std::map<std::string, setter> table{
      {"url",
       [](options& o, const std::string& v) {
         auto url = parse_ws_url(v);
         if (!url)
           die("--url " + v + ": only ws://LOOPBACK:PORT[/path] is allowed");
         o.urls.push_back(*url);
       }},
      {"pid",
       [](options& o, const std::string& v) {
         o.pids.push_back(static_cast<pid_t>(to_count(v)));
       }},
      {"redis",
       [](options& o, const std::string& v) {
         if (!parse_redis_url(v))
           die("--redis " + v + ": only redis://LOOPBACK:PORT is allowed");
         o.redis_url = v;
       }},
      {"key-prefix", [](options& o, const std::string& v) { o.key_prefix = v; }},
      {"scenario", [](options& o, const std::string& v) { o.scenario = v; }},
      {"rate", [](options& o, const std::string& v) { o.rate = to_positive(v); }},
      {"connections", count(&options::connections)},
      {"user-base", count(&options::user_base)},
      {"window", count(&options::window)},
      {"size", count(&options::size)},
      {"concurrency", count(&options::concurrency)},
      {"sample", count(&options::sample)},
      {"cycles", count(&options::cycles)},
      {"reconnect-delay-ms", count(&options::reconnect_delay_ms)},
      {"hold-ms", count(&options::hold_ms)},
      {"jitter-ms", count(&options::jitter_ms)},
      {"retries", count(&options::retries)},
      {"per-process", count(&options::per_process)},
      {"backlog", count(&options::backlog)},
      {"duration", secs(&options::duration)},
      {"hold", secs(&options::hold)},
      {"settle", secs(&options::settle)},
      {"drain", secs(&options::drain)},
      {"timeout", secs(&options::timeout)},
  };
  return table;
}

void apply(options& o, const std::string& name, const std::string& value) {
  const auto it = setters().find(name);
  if (it == setters().end())
    die("unknown option --" + name);
  try {
    it->second(o, value);
  } catch (const std::logic_error&) { // invalid_argument, out_of_range
    die("bad value for --" + name + ": " + value);
  }
}

// Defaults that depend on other options.
void complete(options& o) {
  if (o.scenario.empty())
    die("no scenario given");
  if (o.urls.empty())
    die("no --url given");
  if (o.scenario == "cluster" && o.urls.size() < 2)
    die("the cluster scenario needs two or more --url");
  if (o.connections == 0 || o.window == 0 || o.concurrency == 0)
    die("--connections, --window and --concurrency must be positive");
  if (o.user_base == 0) {
    // Distinct users per run, so that the presence of a previous run's users
    // (still in their grace period) is not counted as this run's.
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    o.user_base =
        1'000'000 *
        (1 + std::chrono::duration_cast<std::chrono::seconds>(now).count() % 1'000'000);
  }
  if (o.scenario == "cluster" && o.settle.count() == 0)
    o.settle = seconds_d(1.2); // SPEC 3: reachable from other nodes within 1 s
  // Beyond every phase's own deadline (connecting: 30 s + 5 ms per
  // connection; users coming back: 60 s; answers: 10 s each), so that the
  // watchdog only ever ends a run that is stuck.
  if (o.timeout.count() == 0)
    o.timeout = o.duration + o.hold + o.settle + o.drain +
                seconds_d(180 + 0.01 * static_cast<double>(o.connections));
}

} // namespace

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) {
      if (!o.scenario.empty())
        die("unexpected argument " + arg);
      o.scenario = arg;
      continue;
    }
    arg.erase(0, 2);
    const auto eq = arg.find('=');
    if (eq != std::string::npos) {
      apply(o, arg.substr(0, eq), arg.substr(eq + 1));
    } else if (i + 1 < argc) {
      apply(o, arg, argv[++i]);
    } else {
      die("--" + arg + " needs a value");
    }
  }
  complete(o);
  return o;
}

} // namespace bench
