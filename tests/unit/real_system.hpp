// Tests on a real CAF scheduler (detached actors, real threads): a quiet
// actor system with two threads that ends what the test spawned, and a
// bounded poll for what those actors do in the background.
#pragma once

#include "src/base/log.hpp"

#include <chrono>
#include <thread>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/atom.hpp"
#include "caf/exit_reason.hpp"
#include "caf/send.hpp"

namespace hubnode::test {

// Polls `condition` every 10 ms for at most `bound`.
template <class Condition>
bool eventually(Condition condition,
                std::chrono::milliseconds bound = std::chrono::milliseconds(2000)) {
  using clock_type = std::chrono::steady_clock;
  auto deadline = clock_type::now() + bound;
  while (!condition()) {
    if (clock_type::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// A real actor system, quiet, on two scheduler threads. Every actor in
// `spawned` gets an exit message when the fixture ends; the system's
// destructor then waits for every actor. Whatever those actors use (stats,
// a redis_server) must outlive `sys`: put it in a base listed before this one.
struct real_system {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  std::vector<caf::actor> spawned;

  real_system() : sys(init(cfg)) {}

  ~real_system() {
    for (auto& actor : spawned)
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  }

  real_system(const real_system&) = delete;
  real_system& operator=(const real_system&) = delete;

  static caf::actor_system_config& init(caf::actor_system_config& cfg) {
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    cfg.set("logger.console-verbosity", caf::atom("quiet"));
    cfg.set("scheduler.max-threads", 2);
    return cfg;
  }
};

} // namespace hubnode::test
