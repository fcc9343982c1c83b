// CAF's scheduler, replaced: actors run on the node's network I/O threads.
//
// With CAF's work-stealing scheduler one message from a client crosses
// threads four times (socket thread -> worker for the connection actor, the
// hub and the recipient -> socket thread for the write), and every crossing
// is a wake-up: a futex, or a worker polling with nanosleep. At a steady
// 20,000 msgs/s that cost more CPU than the work itself. Here an actor is a
// handler on the same io_context as the sockets: a message sent while the
// thread handles another is queued on that thread and runs next, with no
// wake-up at all.
//
// Chosen by scheduler.policy = 'io' (hubnode's default); 'stealing' and
// 'sharing' still select CAF's own schedulers.
#pragma once

#include "src/base/log.hpp"

#include "src/net/io_pool.hpp"

#include <thread>

#include "caf/actor_system_config.hpp"
#include "caf/detail/thread_safe_actor_clock.hpp"
#include "caf/execution_unit.hpp"
#include "caf/scheduler/abstract_coordinator.hpp"

namespace hubnode {

class io_scheduler : public caf::scheduler::abstract_coordinator {
public:
  io_scheduler(caf::actor_system& sys, io_pool& pool);

  // Makes the actor system built from `cfg` run its actors on `pool`, unless
  // scheduler.policy asks for one of CAF's schedulers.
  static void install(caf::actor_system_config& cfg, io_pool& pool);

  // Whether the system's actors run on the io threads: then the system
  // starts them and stops them after its last actor.
  static bool runs(caf::actor_system& sys);

  void enqueue(caf::resumable* job) override;
  caf::detail::thread_safe_actor_clock& clock() noexcept override;
  void start() override;
  void stop() override;

private:
  // Where a running actor sends: the same io_context.
  class unit : public caf::execution_unit {
  public:
    unit(caf::actor_system& sys, io_scheduler& owner);
    void exec_later(caf::resumable* job) override;

  private:
    io_scheduler& owner_;
  };

  // A queued job; if the io_context is destroyed before it runs, the job is
  // cleaned up instead of leaked.
  class job_handler;

  void resume(caf::resumable* job);

  io_pool& pool_;
  caf::detail::thread_safe_actor_clock clock_;
  std::thread timer_;
  unit unit_;
};

} // namespace hubnode
