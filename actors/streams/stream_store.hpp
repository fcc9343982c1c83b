// The streams of SPEC section 8, standalone mode: per key (a user's direct
// messages, a channel's publications) the offsets handed out, the epoch, and
// the last entries kept for recovery. A plain class owned by one actor (the
// hub for users, the channels actor for channels), which appends and
// delivers in one turn and registers and replays in one turn, so that the
// race between a recovery and live entries is only the order of that actor's
// messages.
#pragma once

#include "src/base/log.hpp"

#include "src/base/types.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace hubnode {

struct stream_settings {
  // Prefix of every epoch: tells one run of the node from another, so that a
  // restart gives every stream a new epoch.
  std::string epoch_prefix;
  std::size_t size = 0; // entries kept per stream
  std::chrono::nanoseconds ttl{};
  std::size_t recover_limit = 0; // most entries one recovery replays
};

// A stream's position and kept entries after some offset, oldest first.
struct stream_slice {
  stream_position top;
  std::vector<payload> entries;
  std::uint64_t first_offset = 0; // of entries.front()
};

template <class Key>
class stream_store {
public:
  using time_point = std::chrono::steady_clock::time_point;

  explicit stream_store(stream_settings cfg);

  // A reader of `key` (a connection of the user, a subscriber of the
  // channel) is registered: its stream's position, the stream created when
  // there is none (or it expired), so that the epoch a welcome or a
  // `subscribed` names is the one later entries get. The stream is kept
  // while it has a reader.
  stream_position open(const Key& key, time_point now);

  // That reader is gone: history.ttl counts from now too.
  void close(const Key& key, time_point now);

  // Appends the frame `make(offset)` builds for the next offset and returns it.
  template <class MakeFrame>
  payload append(const Key& key, time_point now, MakeFrame&& make) {
    auto& s = live(key, now);
    s.last_change = now;
    auto frame = make(++s.last_offset);
    keep(s, frame);
    return frame;
  }

  // The entries after `from` in offset order when all of them are kept and
  // they are at most recover_limit; nothing when `from` cannot be recovered
  // (another epoch, a future offset, or entries lost).
  std::optional<std::vector<payload>> since(const Key& key, const stream_position& from,
                                            time_point now);

  // The kept entries after offset `after` (none: the latest), at most
  // `limit` of them, in offset order.
  stream_slice kept(const Key& key, std::optional<std::uint64_t> after, std::size_t limit,
                    time_point now);

  // Drops the streams expired by `now`: their memory is freed here, while
  // open(), append() and since() never see an expired stream anyway.
  void expire(time_point now);

  std::size_t streams() const { return streams_.size(); }

private:
  // About 100 bytes with its map node while it has no entry: an idle
  // connected user costs this. `kept` is a ring once full, oldest at `head`.
  struct stream {
    std::uint64_t generation = 0;
    std::uint64_t last_offset = 0;
    time_point last_change;
    std::vector<payload> kept;
    std::uint32_t head = 0;
    std::uint32_t readers = 0;
  };

  stream& live(const Key& key, time_point now);
  bool expired(const stream& s, time_point now) const;
  void keep(stream& s, const payload& frame);
  std::string epoch_of(const stream& s) const;
  // The newest `count` kept entries of `s`, oldest first.
  std::vector<payload> newest(const stream& s, std::size_t count) const;

  stream_settings cfg_;
  std::unordered_map<Key, stream> streams_;
  std::uint64_t last_generation_ = 0;
};

using user_streams = stream_store<user_id>;
using channel_streams = stream_store<std::string>;

extern template class stream_store<user_id>;
extern template class stream_store<std::string>;

} // namespace hubnode
