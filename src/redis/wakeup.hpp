// A wake-up for a thread that blocks in poll(): any thread may notify, and
// the waiting thread sees its fd readable until it clears it (an eventfd).
#pragma once

namespace hubnode {

class poll_wakeup {
public:
  poll_wakeup();
  ~poll_wakeup();
  poll_wakeup(const poll_wakeup&) = delete;
  poll_wakeup& operator=(const poll_wakeup&) = delete;

  // Thread-safe, never blocks; notifications before a clear() count as one.
  void notify() const noexcept;

  void clear() const noexcept;

  // Readable while notified; -1 when the kernel gave no eventfd, and then
  // nobody is woken (the poller's own timeout still ends its wait).
  int fd() const { return fd_; }

private:
  int fd_;
};

} // namespace hubnode
