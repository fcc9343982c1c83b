// The node's network I/O threads: one io_context run by server.io-threads
// threads until stop(), whether or not there is socket work, because under
// scheduler.policy 'io' the actors run on them too (io_scheduler.hpp).
#pragma once

#include "src/base/log.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "caf/actor_system.hpp"

namespace hubnode {

class io_pool {
public:
  explicit io_pool(std::size_t threads);
  ~io_pool();

  boost::asio::io_context& context() noexcept { return *ioc_; }

  // Starts the threads, with CAF's logger available on them. Once only.
  void start(caf::actor_system& system);

  // Stops and joins the threads, then destroys what is still queued or
  // waiting (sockets that did not close in time), releasing what it holds.
  void stop();

private:
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      work_;
  std::size_t count_;
  std::vector<std::thread> threads_;
};

} // namespace hubnode
