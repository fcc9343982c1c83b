// One stream's readers on this node in cluster mode (SPEC section 8): the
// connections of a user (the hub's) or the subscribers of a channel (the
// channels actor's). A stream changes only in Redis, whose script appends
// an entry and publishes it in one step, so this node's pub/sub feed brings
// a stream's entries in offset order; a plain class owned by one actor
// turns that feed into each reader's exact sequence: every offset once, in
// order, from where the reader started.
//
//   join ──> held ──settle──> live ──entry──> live (delivered)
//              ^                │
//              └── gap, link ───┘            settle finds entries lost:
//                  back (resync)             lost (channels end it; a user's
//                                            connection skips ahead)
//
// A held reader waits for a read of the stream from Redis (a join's
// position and replay, or a resync's missed entries) and buffers what the
// feed brings meanwhile; settle() delivers the read's entries it had not
// seen, then the buffer, so no entry is skipped or repeated at the seam.
#pragma once

#include "actors/messages.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubnode {

// Whether `read` (the entries after `from.offset`, at most `limit`) holds
// every entry a client at `from` missed, so that it recovers exactly.
bool recovers(const stream_read& read, const stream_position& from, std::size_t limit);

class stream_feed {
public:
  using ticket = std::uint64_t;

  // A resync's read: for the readers held with `held`, the entries after
  // `after`.
  struct resync {
    ticket held = 0;
    std::uint64_t after = 0;
  };

  // drop_lost: a reader that lost entries for good is removed (and told
  // through `lost`) instead of going on after the gap.
  explicit stream_feed(bool drop_lost) : drop_lost_(drop_lost) {}

  // A new reader, held until settle() with the ticket returned.
  ticket join(const connection_actor& conn);

  // True when `conn` was the last reader.
  bool leave(const caf::actor_addr& conn);

  bool empty() const { return readers_.empty(); }
  // Whether a reader is still held with `held`.
  bool holds(ticket held) const;
  std::size_t size() const { return readers_.size(); }

  // Holds every live reader for a resync (the pub/sub link came back, so the
  // feed may have lost entries); nothing to read when none is live.
  std::optional<resync> hold_live();

  // An entry from the feed. A live reader gets it when it is the next one;
  // a gap holds the live readers and returns the resync to read.
  template <class Deliver, class Lost>
  std::optional<resync> push(std::string_view epoch, const stream_entry& entry,
                             Deliver&& deliver, Lost&& lost);

  // The read for the readers held with `held` failed (Redis is down): they
  // go live from the next entry the feed brings, whatever its offset.
  template <class Deliver>
  void settle_unpositioned(ticket held, Deliver&& deliver);

  // The same where a reader must not go on after a gap: each is lost.
  template <class Lost>
  void abandon(ticket held, Lost&& lost);

  // A position of the stream read from Redis for no reader (the periodic
  // refresh): a new epoch means the live readers lost their entries.
  template <class Lost>
  void observe(const stream_position& top, Lost&& lost);

  // The read for the readers held with `held` arrived. `start`: the offset
  // after which a joining reader begins (its recovered position or the
  // stream's top); none for a resync, whose readers go on from their own.
  template <class Deliver, class Lost>
  void settle(ticket held, const stream_read& read, std::optional<std::uint64_t> start,
              Deliver&& deliver, Lost&& lost);

  // The stream's epoch as this node last saw it; empty before any read.
  const std::string& epoch() const { return epoch_; }

private:
  struct buffered {
    std::string epoch;
    stream_entry entry;
  };

  // The `last` of a reader that has no position yet.
  static constexpr std::uint64_t unpositioned = ~std::uint64_t{0};

  struct reader {
    connection_actor conn;
    std::uint64_t last = 0; // the last offset it got, or unpositioned
    ticket held = 0;        // 0 while live
    std::unique_ptr<std::vector<buffered>> buffer;
  };

  void hold(reader& r, ticket t);
  // Delivers `entry` when it is r's next; false on a gap.
  template <class Deliver>
  static bool next(reader& r, const stream_entry& entry, Deliver& deliver);
  // A reader whose entries are gone: false when it must be removed.
  template <class Lost>
  bool lose(reader& r, Lost& lost);
  template <class Deliver>
  bool replay(reader& r, const stream_read& read, Deliver& deliver);
  template <class Lost>
  void switch_epoch(std::string_view epoch, Lost& lost);
  // Delivers r's buffer from its last offset; false on a gap.
  template <class Deliver>
  bool catch_up(reader& r, Deliver& deliver);

  bool drop_lost_;
  std::string epoch_;
  std::vector<reader> readers_;
  ticket last_ticket_ = 0;
  ticket resyncing_ = 0; // the resync in flight, 0 when none
};

template <class Deliver>
bool stream_feed::next(reader& r, const stream_entry& entry, Deliver& deliver) {
  if (r.last != unpositioned && entry.offset <= r.last)
    return true;
  if (r.last != unpositioned && entry.offset != r.last + 1)
    return false;
  deliver(r.conn, entry.frame);
  r.last = entry.offset;
  return true;
}

template <class Lost>
bool stream_feed::lose(reader& r, Lost& lost) {
  if (drop_lost_) {
    lost(r.conn);
    return false;
  }
  r.last = 0;
  return true;
}

template <class Deliver, class Lost>
std::optional<stream_feed::resync> stream_feed::push(std::string_view epoch,
                                                     const stream_entry& entry,
                                                     Deliver&& deliver, Lost&& lost) {
  switch_epoch(epoch, lost);
  std::optional<resync> started;
  for (auto& r : readers_)
    if (r.held == 0 && r.last != unpositioned && entry.offset > r.last + 1) {
      started = hold_live();
      break;
    }
  for (auto& r : readers_) {
    if (r.held != 0)
      r.buffer->push_back({std::string{epoch}, entry});
    else
      next(r, entry, deliver);
  }
  return started;
}

template <class Deliver>
bool stream_feed::replay(reader& r, const stream_read& read, Deliver& deliver) {
  for (auto& entry : read.entries)
    if (!next(r, entry, deliver))
      return false;
  if (r.last < read.top.offset)
    return false;
  return catch_up(r, deliver);
}

template <class Deliver>
bool stream_feed::catch_up(reader& r, Deliver& deliver) {
  // Entries of another epoch in the buffer were published before the read
  // (or the stream was lost again after it, which the next entry shows).
  for (auto& b : *r.buffer)
    if (b.epoch == epoch_ && !next(r, b.entry, deliver))
      return false;
  return true;
}

template <class Deliver, class Lost>
void stream_feed::settle(ticket held, const stream_read& read,
                         std::optional<std::uint64_t> start, Deliver&& deliver,
                         Lost&& lost) {
  bool changed = !epoch_.empty() && read.top.epoch != epoch_;
  epoch_ = read.top.epoch;
  if (resyncing_ == held)
    resyncing_ = 0;
  std::vector<reader> kept;
  kept.reserve(readers_.size());
  for (auto& r : readers_) {
    bool mine = r.held == held;
    if (mine && start)
      r.last = *start;
    else if ((mine || r.held == 0) && changed && !lose(r, lost))
      continue;
    if (mine) {
      if (r.last == unpositioned)
        r.last = read.top.offset;
      if (!replay(r, read, deliver)) {
        auto reached = std::max(r.last, read.top.offset);
        if (!lose(r, lost))
          continue;
        // It goes on after the gap, with what the feed brought since the
        // read: those entries come no other way.
        r.last = reached;
        catch_up(r, deliver);
      }
      r.held = 0;
      r.buffer.reset();
    }
    kept.push_back(std::move(r));
  }
  readers_ = std::move(kept);
}

template <class Deliver>
void stream_feed::settle_unpositioned(ticket held, Deliver&& deliver) {
  for (auto& r : readers_) {
    if (r.held != held)
      continue;
    r.last = unpositioned;
    for (auto& b : *r.buffer)
      next(r, b.entry, deliver);
    r.held = 0;
    r.buffer.reset();
  }
}

template <class Lost>
void stream_feed::abandon(ticket held, Lost&& lost) {
  if (resyncing_ == held)
    resyncing_ = 0;
  std::vector<reader> kept;
  kept.reserve(readers_.size());
  for (auto& r : readers_)
    if (r.held == held)
      lost(r.conn);
    else
      kept.push_back(std::move(r));
  readers_ = std::move(kept);
}

template <class Lost>
void stream_feed::observe(const stream_position& top, Lost&& lost) {
  switch_epoch(top.epoch, lost);
}

// A new epoch: the stream lost its history, and with it what the live
// readers were owed.
template <class Lost>
void stream_feed::switch_epoch(std::string_view epoch, Lost& lost) {
  if (epoch_.empty() || epoch == epoch_)
    return;
  epoch_ = std::string{epoch};
  std::vector<reader> kept;
  kept.reserve(readers_.size());
  for (auto& r : readers_)
    if (r.held != 0 || lose(r, lost))
      kept.push_back(std::move(r));
  readers_ = std::move(kept);
}

} // namespace hubnode
