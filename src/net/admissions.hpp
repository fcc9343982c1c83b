// Handshakes the node has not finished: connections still in the kernel's
// accept queue, and accepted ones whose WebSocket upgrade has been neither
// admitted nor refused yet.
//
// Presence holds a user's grace period open while there are any (bounded;
// actors/presence/grace.cpp): when a storm of reconnects arrives faster than the
// node can admit them, a user's reconnect may be waiting among them, and the
// grace period would otherwise run out on the node's backlog rather than on
// the user.
#pragma once

#include "src/base/log.hpp"

#include <atomic>
#include <utility>

namespace hubnode {

class admissions {
public:
  // One handshake in progress, from accept until the upgrade is admitted or
  // refused, or the socket ends.
  class token {
  public:
    token() = default;
    explicit token(admissions& owner) : owner_(&owner) { owner_->begin(); }
    token(token&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    token& operator=(token&& other) noexcept {
      release();
      owner_ = std::exchange(other.owner_, nullptr);
      return *this;
    }
    token(const token&) = delete;
    token& operator=(const token&) = delete;
    ~token() { release(); }

    void release() {
      if (owner_ != nullptr)
        std::exchange(owner_, nullptr)->end();
    }

  private:
    admissions* owner_ = nullptr;
  };

  // The listening socket whose accept queue counts; -1 once it is closed.
  void listening(int fd) { listen_fd_ = fd; }

  // Whether any handshake is waiting or in progress. Any thread.
  bool pending() const;

private:
  void begin() { ++in_progress_; }
  void end() { --in_progress_; }

  std::atomic<int> in_progress_{0};
  std::atomic<int> listen_fd_{-1};
};

} // namespace hubnode
