#include "src/base/log.hpp"

#include "src/net/admissions.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace hubnode {

namespace {

// Linux reports a listening socket's accept queue length as tcpi_unacked.
bool accept_queue_empty(int fd) {
  tcp_info info{};
  socklen_t size = sizeof(info);
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0)
    return true;
  return info.tcpi_unacked == 0;
}

} // namespace

bool admissions::pending() const {
  return in_progress_ > 0 || !accept_queue_empty(listen_fd_);
}

} // namespace hubnode
