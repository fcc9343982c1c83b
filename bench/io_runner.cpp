#include "bench/io_runner.hpp"

namespace bench {

io_runner::io_runner() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}

io_runner::~io_runner() {
  stop();
}

void io_runner::stop() {
  if (!thread_.joinable())
    return;
  work_.reset();
  io_.stop();
  thread_.join();
}

} // namespace bench
