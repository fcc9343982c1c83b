#include "src/base/log.hpp"

#include "src/net/open_sockets.hpp"

namespace hubnode {

open_socket::open_socket(open_sockets& all, closable& owner) : all_(all), owner_(owner) {
  all_.add(*this);
}

open_socket::~open_socket() {
  all_.remove(*this);
}

void open_sockets::add(open_socket& s) {
  std::lock_guard<std::mutex> guard{mutex_};
  s.next_ = head_;
  if (head_ != nullptr)
    head_->prev_ = &s;
  head_ = &s;
  ++count_;
}

void open_sockets::remove(open_socket& s) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (s.prev_ != nullptr)
    s.prev_->next_ = s.next_;
  else
    head_ = s.next_;
  if (s.next_ != nullptr)
    s.next_->prev_ = s.prev_;
  if (--count_ == 0)
    none_.notify_all();
}

bool open_sockets::wait_until_none(time_point deadline) {
  std::unique_lock<std::mutex> guard{mutex_};
  return none_.wait_until(guard, deadline, [this] { return count_ == 0; });
}

// A session being destroyed waits on the mutex to leave the list, with its
// other members still whole, so each one reached here can be asked.
void open_sockets::close_all() {
  std::lock_guard<std::mutex> guard{mutex_};
  for (auto s = head_; s != nullptr; s = s->next_)
    s->owner_.force_close();
}

std::size_t open_sockets::count() {
  std::lock_guard<std::mutex> guard{mutex_};
  return count_;
}

} // namespace hubnode
