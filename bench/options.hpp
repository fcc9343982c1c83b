// Command-line options of hubnode-bench, shared by every scenario.
#pragma once

#include "bench/url.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <sys/types.h>
#include <vector>

namespace bench {

using seconds_d = std::chrono::duration<double>;

struct options {
  std::string scenario;
  std::vector<ws_url> urls;
  std::vector<pid_t> pids; // nodes whose RSS / CPU are reported
  std::string redis_url;   // cluster mode: presence events from Redis
  std::string key_prefix = "hubnode:";
  std::uint64_t connections = 100; // clients (pairs: rounded down to even)
  std::uint64_t user_base = 0;     // first user id; 0 = derived from the clock
  seconds_d duration{5};           // measured window (pairs, echo, cluster, churn)
  seconds_d hold{2};               // idle: how long the connections stay before sampling
  seconds_d settle{0};             // pause after connecting (cluster: subscriptions)
  seconds_d drain{5};              // how long to wait for messages still in flight
  seconds_d timeout{0};            // hard watchdog; 0 = derived from the others
  std::uint64_t window = 8;        // closed loop: messages in flight per connection
  double rate = 0;                 // open loop: messages/s offered in total; 0 = closed
  std::uint64_t size = 0;          // padding bytes added to each message's data
  std::uint64_t concurrency = 256; // handshakes in flight at once
  std::uint64_t sample = 100;      // idle: connections that must answer a ping
  std::uint64_t cycles = 1000;     // churn: reconnections per user at most
  std::uint64_t reconnect_delay_ms = 0; // churn: pause between close and reconnect
  std::uint64_t hold_ms = 50;           // churn: time a connection stays between cycles
  std::uint64_t jitter_ms = 50;         // storm: largest random reconnect delay
  std::uint64_t retries = 8;            // storm: attempts per client after the first
  std::uint64_t per_process = 0;        // idle: connections per process; 0 = from RLIMIT
  std::uint64_t backlog = 50;           // recover: messages each user misses
};

// Parses argv; on a bad or missing option prints the reason and usage to
// stderr and exits with status 2.
options parse_options(int argc, char** argv);

} // namespace bench
