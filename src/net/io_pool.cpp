#include "src/base/log.hpp"

#include "src/net/io_pool.hpp"

#include "src/net/system_thread.hpp"

namespace hubnode {

namespace net = boost::asio;

io_pool::io_pool(std::size_t threads)
    : ioc_(std::make_unique<net::io_context>(static_cast<int>(threads))),
      work_(net::make_work_guard(*ioc_)), count_(threads) {}

io_pool::~io_pool() {
  stop();
}

void io_pool::start(caf::actor_system& system) {
  for (std::size_t i = 0; i < count_; ++i)
    threads_.push_back(system_thread(system, "hubnode.io", [this] { ioc_->run(); }));
}

void io_pool::stop() {
  if (!ioc_)
    return;
  work_.reset();
  ioc_->stop();
  for (auto& thread : threads_)
    thread.join();
  threads_.clear();
  ioc_.reset();
}

} // namespace hubnode
