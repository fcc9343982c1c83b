// Every client socket the node has open, so that shutdown can wait until the
// last close frame is out and then close what is left. The io threads cannot
// tell by running out of work: under scheduler.policy 'io' they keep running
// for the actors.
#pragma once

#include "src/base/log.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace hubnode {

class open_sockets;

// What a session does when shutdown runs out of time.
class closable {
public:
  // Close the socket now; called from any thread, so it only posts. A
  // session already being destroyed does nothing. It must not end the
  // session on the calling thread: close_all() calls it holding the list's
  // lock, which the session's destructor takes.
  virtual void force_close() = 0;

protected:
  ~closable() = default;
};

// A session's membership, listed while it lives: an intrusive list, so an
// idle connection pays four pointers for it. Declared as the session's last
// member, it leaves the list before any other member is destroyed.
class open_socket {
public:
  open_socket(open_sockets& all, closable& owner);
  ~open_socket();
  open_socket(const open_socket&) = delete;
  open_socket& operator=(const open_socket&) = delete;

private:
  friend class open_sockets;
  open_sockets& all_;
  closable& owner_;
  open_socket* prev_ = nullptr;
  open_socket* next_ = nullptr;
};

class open_sockets {
public:
  using time_point = std::chrono::steady_clock::time_point;

  // True once none is open; false at the deadline.
  bool wait_until_none(time_point deadline);

  // Asks every open socket to close now.
  void close_all();

  std::size_t count();

private:
  friend class open_socket;
  void add(open_socket& s);
  void remove(open_socket& s);

  std::mutex mutex_;
  std::condition_variable none_;
  open_socket* head_ = nullptr;
  std::size_t count_ = 0;
};

} // namespace hubnode
