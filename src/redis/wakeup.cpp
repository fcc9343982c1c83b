#include "src/base/log.hpp"

#include "src/redis/wakeup.hpp"

#include <cstdint>

#include <sys/eventfd.h>
#include <unistd.h>

namespace hubnode {

poll_wakeup::poll_wakeup() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

poll_wakeup::~poll_wakeup() {
  if (fd_ >= 0)
    ::close(fd_);
}

void poll_wakeup::notify() const noexcept {
  if (fd_ < 0)
    return;
  std::uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(fd_, &one, sizeof(one));
}

void poll_wakeup::clear() const noexcept {
  if (fd_ < 0)
    return;
  std::uint64_t count = 0;
  [[maybe_unused]] auto read = ::read(fd_, &count, sizeof(count));
}

} // namespace hubnode
