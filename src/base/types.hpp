// Value types that travel in messages between hubnode's actors.
#pragma once

#include "src/base/log.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "caf/allowed_unsafe_message_type.hpp"

namespace hubnode {

using user_id = std::uint64_t;
using user_list = std::vector<user_id>;

// A serialized server frame. Built once and shared by every recipient
// connection, so a broadcast costs one serialization, not one per socket.
using payload = std::shared_ptr<const std::string>;

inline payload make_payload(std::string text) {
  return std::make_shared<const std::string>(std::move(text));
}

// The hub's answer to a connection asking to be registered.
enum class admission : std::uint8_t { admitted, over_capacity, too_many_connections };

// A position in a stream (SPEC section 8): its epoch and an offset in it.
struct stream_position {
  std::string epoch;
  std::uint64_t offset = 0;
};

// One entry of a stream: its offset and its frame (the offset inside).
struct stream_entry {
  std::uint64_t offset = 0;
  payload frame;
};

// A stream read from Redis (cluster mode): its position, and kept entries
// in offset order.
struct stream_read {
  stream_position top;
  std::vector<stream_entry> entries;
};

// A read of a stream: at most `count` kept entries after offset `after`
// (none: the newest).
struct read_request {
  std::optional<std::uint64_t> after;
  std::size_t count = 0;
};

// What a connection asks of the hub at registration: to recover from this
// position (the upgrade's `recover` and `epoch`), if the client gave one.
using recovery_request = std::optional<stream_position>;

// The hub's answer to an admitted connection: what its welcome says.
struct welcome_info {
  std::string connection_id;
  // The user stream's position at registration; none in cluster mode.
  std::optional<stream_position> position;
  // Only when a recovery was asked. When true, the missed messages follow
  // the answer as deliveries, before any live one.
  std::optional<bool> recovered;
};

// Why a connection ended; the label of hubnode_connections_closed_total.
enum class close_reason : std::uint8_t {
  client,
  stale,
  slow_consumer,
  policy,
  shutdown,
  error
};

const char* to_label(close_reason reason);

// The channels a connection may use (SPEC section 8): exact names and
// prefixes ending in `*`. None (userid mode): every channel.
using channel_grants = std::shared_ptr<const std::vector<std::string>>;

// One text frame from a client, already parsed on the I/O thread.
// `error_code` is set instead of a kind when the frame was not a valid request.
struct inbound {
  enum class kind : std::uint8_t {
    invalid,
    send,
    presence,
    watch,
    unwatch,
    ping,
    subscribe,
    unsubscribe,
    publish
  };
  kind type = kind::invalid;
  std::string ref;
  bool has_ref = false;
  user_id to = 0;
  std::string data; // raw JSON text of `data`, reused verbatim in the message
  user_list user_ids;
  std::string channel;
  recovery_request recover; // subscribe's `recover`
  std::string error_code;
  std::string error_message;
};

// The requests of one read from the socket, in the order the client sent them.
using inbound_batch = std::vector<inbound>;

// A message for the hub to route: to whom, and its `data` as raw JSON text.
struct outgoing {
  user_id to = 0;
  std::string data;
};
using outgoing_batch = std::vector<outgoing>;

// The hub's answer for one routed message: its id, and whether the
// recipient is online (here, on another node, or within its grace period).
struct routed {
  std::string id;
  bool online = false;
};
using routed_batch = std::vector<routed>;

// A subscribe, unsubscribe or publish of one connection for the channels
// actor: the answer frame carries `ref`; `data` (raw JSON) only to publish.
struct channel_request {
  std::string channel;
  std::string ref;
  bool has_ref = false;
  recovery_request recover;
  std::string data;
};

// The HTTP history query of a channel (SPEC section 8): the kept entries
// after `since` (none: the latest), at most `limit`.
struct history_request {
  std::string channel;
  std::optional<std::uint64_t> since;
  std::size_t limit = 0;
};

} // namespace hubnode

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::payload)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::admission)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::close_reason)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::recovery_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::stream_entry)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::stream_read)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::read_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::welcome_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::inbound)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::inbound_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::outgoing_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::routed_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::channel_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::history_request)
