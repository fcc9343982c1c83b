// The streams of direct messages of SPEC section 8, standalone mode: per user
// the offsets handed out, the epoch, and the last entries kept for recovery.
// A plain class owned by the hub, which appends and delivers in one turn and
// registers and replays in one turn, so that the race between a recovery and
// live messages is only the order of the hub's messages.
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

struct user_streams_settings {
  // Prefix of every epoch: tells one run of the node from another, so that a
  // restart gives every stream a new epoch.
  std::string epoch_prefix;
  std::size_t size = 0; // entries kept per stream
  std::chrono::nanoseconds ttl{};
  std::size_t recover_limit = 0; // most entries one recovery replays
};

class user_streams {
public:
  using time_point = std::chrono::steady_clock::time_point;

  explicit user_streams(user_streams_settings cfg);

  // A connection of `user` is registered: its stream's position, the stream
  // created when there is none (or it expired), so that the epoch a welcome
  // names is the one later entries get. The stream is kept while the user
  // has a connection on this node.
  stream_position open(user_id user, time_point now);

  // That connection is gone: history.ttl counts from now too.
  void close(user_id user, time_point now);

  // Appends the frame `make(offset)` builds for the next offset and returns it.
  template <class MakeFrame>
  payload append(user_id user, time_point now, MakeFrame&& make) {
    auto& s = live(user, now);
    s.last_change = now;
    auto frame = make(++s.last_offset);
    keep(s, frame);
    return frame;
  }

  // The entries after `from` in offset order when all of them are kept and
  // they are at most recover_limit; nothing when `from` cannot be recovered
  // (another epoch, a future offset, or entries lost).
  std::optional<std::vector<payload>> since(user_id user, const stream_position& from,
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
    std::uint32_t connections = 0;
  };

  stream& live(user_id user, time_point now);
  bool expired(const stream& s, time_point now) const;
  void keep(stream& s, const payload& frame);
  std::string epoch_of(const stream& s) const;

  user_streams_settings cfg_;
  std::unordered_map<user_id, stream> streams_;
  std::uint64_t last_generation_ = 0;
};

} // namespace hubnode
