#include "src/base/log.hpp"

#include "actors/streams/stream_feed.hpp"

#include <algorithm>

namespace hubnode {

bool recovers(const stream_read& read, const stream_position& from, std::size_t limit) {
  if (read.top.epoch != from.epoch || from.offset > read.top.offset ||
      read.top.offset - from.offset > limit)
    return false;
  auto missed = read.top.offset - from.offset;
  return read.entries.size() == missed &&
         (missed == 0 || read.entries.front().offset == from.offset + 1);
}

stream_feed::ticket stream_feed::join(const connection_actor& conn) {
  readers_.push_back(reader{conn, 0, 0, nullptr});
  hold(readers_.back(), ++last_ticket_);
  return last_ticket_;
}

bool stream_feed::leave(const caf::actor_addr& conn) {
  readers_.erase(std::remove_if(readers_.begin(), readers_.end(),
                                [&](const reader& r) { return r.conn == conn; }),
                 readers_.end());
  return readers_.empty();
}

bool stream_feed::holds(ticket held) const {
  return std::any_of(readers_.begin(), readers_.end(),
                     [&](const reader& r) { return r.held == held; });
}

void stream_feed::hold(reader& r, ticket t) {
  r.held = t;
  r.buffer = std::make_unique<std::vector<buffered>>();
}

// A resync already in flight takes the newly held readers too: what its
// read lacks for them shows as a gap when they settle.
std::optional<stream_feed::resync> stream_feed::hold_live() {
  bool fresh = resyncing_ == 0;
  if (fresh)
    resyncing_ = ++last_ticket_;
  std::optional<std::uint64_t> after;
  bool any = false;
  for (auto& r : readers_) {
    if (r.held != 0)
      continue;
    any = true;
    hold(r, resyncing_);
    if (r.last != unpositioned)
      after = std::min(after.value_or(r.last), r.last);
  }
  if (fresh && !any)
    resyncing_ = 0;
  if (!fresh || !any)
    return std::nullopt;
  // Readers without a position take the stream's top from the read.
  return resync{resyncing_, after.value_or(0)};
}

} // namespace hubnode
