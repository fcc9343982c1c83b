#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "hub"

#include "src/net/io_scheduler.hpp"

#include "src/net/system_thread.hpp"

#include <boost/asio/post.hpp>
#include <utility>

#include "caf/actor_system.hpp"
#include "caf/config_value.hpp"
#include "caf/resumable.hpp"

namespace hubnode {

namespace net = boost::asio;

class io_scheduler::job_handler {
public:
  job_handler(io_scheduler* owner, caf::resumable* job) : owner_(owner), job_(job) {}
  job_handler(job_handler&& other) noexcept
      : owner_(other.owner_), job_(std::exchange(other.job_, nullptr)) {}
  job_handler(const job_handler&) = delete;
  job_handler& operator=(const job_handler&) = delete;
  job_handler& operator=(job_handler&&) = delete;

  ~job_handler() {
    if (job_ != nullptr)
      abstract_coordinator::cleanup_and_release(job_);
  }

  void operator()() { owner_->resume(std::exchange(job_, nullptr)); }

private:
  io_scheduler* owner_;
  caf::resumable* job_;
};

io_scheduler::unit::unit(caf::actor_system& sys, io_scheduler& owner)
    : caf::execution_unit(&sys), owner_(owner) {}

void io_scheduler::unit::exec_later(caf::resumable* job) {
  owner_.enqueue(job);
}

io_scheduler::io_scheduler(caf::actor_system& sys, io_pool& pool)
    : abstract_coordinator(sys), pool_(pool), unit_(sys, *this) {}

void io_scheduler::install(caf::actor_system_config& cfg, io_pool& pool) {
  if (caf::get_or(cfg, "scheduler.policy", caf::atom("io")) != caf::atom("io"))
    return;
  cfg.module_factories.push_back([&pool](caf::actor_system& sys) {
    return static_cast<caf::actor_system::module*>(new io_scheduler(sys, pool));
  });
}

bool io_scheduler::runs(caf::actor_system& sys) {
  return dynamic_cast<io_scheduler*>(&sys.scheduler()) != nullptr;
}

void io_scheduler::enqueue(caf::resumable* job) {
  net::post(pool_.context(), job_handler{this, job});
}

caf::detail::thread_safe_actor_clock& io_scheduler::clock() noexcept {
  return clock_;
}

void io_scheduler::start() {
  pool_.start(system());
  // Delayed messages and request timeouts: CAF's own clock on its own
  // thread, as under CAF's schedulers.
  timer_ = system_thread(system(), "caf.clock", [this] { clock_.run_dispatch_loop(); });
  abstract_coordinator::start();
}

// The actor system has waited for every actor before this; what is left on
// the io threads are jobs of actors that ended with the system, released
// when the pool stops.
void io_scheduler::stop() {
  stop_actors();
  clock_.cancel_dispatch_loop();
  timer_.join();
  pool_.stop();
}

void io_scheduler::resume(caf::resumable* job) {
  switch (job->resume(&unit_, max_throughput())) {
  case caf::resumable::resume_later:
    return enqueue(job); // its reference travels with it
  case caf::resumable::done:
  case caf::resumable::awaiting_message:
  case caf::resumable::shutdown_execution_unit:
    intrusive_ptr_release(job);
    return;
  }
}

} // namespace hubnode
