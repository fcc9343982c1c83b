// The streams of SPEC section 8 in Redis (cluster mode), as the commands
// the redis actor runs and the parsers of their replies. A stream is two
// keys of one hash slot (src/redis/keys.hpp): a LIST of its newest entries'
// frames, trimmed to the size kept, and a HASH with its epoch and last
// offset. Only these scripts change them.
#pragma once

#include "src/base/log.hpp"

#include "src/base/types.hpp"
#include "src/redis/types.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace hubnode::stream_scripts {

// The Lua sources, for tests to tell which script a command runs.
extern const char* const append_lua;
extern const char* const read_lua;

// What an append gives every node on the stream's pub/sub channel:
// "<epoch>\n<offset>\n<frame>".
struct published_entry {
  std::string_view epoch;
  stream_entry entry;
};
std::optional<published_entry> parse_published(std::string_view message);

// Appends `frame` (which says "offset":0) to `stream` at its next offset,
// keeps the last `size` entries for `ttl`, and publishes it on `pubsub` in
// the same step, so that every node sees a stream's entries in offset order.
// `new_epoch` is the epoch if the stream has none (new, flushed, expired).
redis_command append(const std::string& stream, std::string_view frame,
                     const std::string& new_epoch, std::size_t size,
                     std::chrono::milliseconds ttl, const std::string& pubsub);

struct appended {
  std::uint64_t offset = 0;
  std::string epoch;
  std::int64_t receivers = 0; // subscribers of `pubsub` that got it
};
std::optional<appended> parse_appended(const redis_reply& reply);

// The position of `stream` (created in `new_epoch` if it has none) and at
// most `count` kept entries after offset `after` (none: the newest); its
// ttl starts again, since a reader is using it.
redis_command read(const std::string& stream, const std::string& new_epoch,
                   std::chrono::milliseconds ttl, std::optional<std::uint64_t> after,
                   std::size_t count);
std::optional<stream_read> parse_read(const redis_reply& reply);

} // namespace hubnode::stream_scripts
