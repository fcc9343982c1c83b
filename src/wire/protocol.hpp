// The JSON protocol of SPEC section 3: parsing client frames and encoding
// server frames. Pure functions, used by sessions (parsing, on I/O threads)
// and by actors (encoding).
#pragma once

#include "src/base/types.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubnode::protocol {

// Most ids accepted in one presence/watch/unwatch request.
constexpr std::size_t max_user_ids = 100;
// Longest accepted `ref`.
constexpr std::size_t max_ref_length = 64;
// Deepest JSON nesting accepted in a client frame or an API body, counting
// the enclosing object: bounds both the parser's work and the recursion when
// the value is destroyed or serialized, so a hostile `[[[[...` costs nothing.
constexpr std::size_t max_depth = 64;

// Parses one client text frame. Never throws: a frame that is not a valid
// request comes back with kind::invalid and error_code/error_message set
// ("bad_request", "unknown_type", "invalid_recipient" or "bad_channel"), and with `ref`
// when the frame had a usable one.
inbound parse_request(std::string_view text);

// The `data` of a POST /api/users/{id}/messages body as its sender wrote it,
// within the limits of a frame; nothing when the body is not a JSON object
// with `data`.
std::optional<std::string_view> api_message_data(std::string_view body);

// `position`: the user stream's (SPEC section 8), none in cluster mode;
// `recovered` only when the client asked to recover.
std::string welcome(user_id user, std::string_view connection_id, std::string_view node,
                    const std::optional<stream_position>& position = std::nullopt,
                    std::optional<bool> recovered = std::nullopt);
// `from` is a decimal user id or "server"; `data` is raw JSON text; `offset`
// in the recipient's stream, none in cluster mode.
std::string message(std::string_view id, std::string_view from, std::string_view data,
                    std::int64_t ts_ms,
                    std::optional<std::uint64_t> offset = std::nullopt);
std::string ack(std::string_view ref, bool has_ref, std::string_view id, bool online);
std::string pong(std::string_view ref, bool has_ref);
std::string error(std::string_view code, std::string_view message, std::string_view ref,
                  bool has_ref);
// `users` are the queried ids, `online` those of them that are online.
std::string presence(const user_list& users, const user_list& online);
std::string presence_changed(user_id user, bool online);

// Channels (SPEC section 8). `recovered` only when the subscribe asked to
// recover; `data` is raw JSON text.
std::string subscribed(std::string_view channel, std::string_view ref, bool has_ref,
                       const stream_position& position,
                       std::optional<bool> recovered = std::nullopt);
std::string unsubscribed(std::string_view channel, std::string_view ref, bool has_ref,
                         std::string_view reason);
std::string published(std::string_view channel, std::string_view ref, bool has_ref,
                      std::string_view id, std::uint64_t offset);
std::string publication(std::string_view channel, std::string_view id,
                        std::uint64_t offset, std::string_view from,
                        std::string_view data, std::int64_t ts_ms);
// The body of GET /api/channels/{name}/history from kept publication frames
// of that channel, in offset order.
std::string history(std::string_view channel, const stream_position& top,
                    const std::vector<payload>& publications);

// {"error":"CODE","message":"..."} for HTTP error bodies; `field` added when non-empty.
std::string http_error(std::string_view code, std::string_view message,
                       std::string_view field = {});

} // namespace hubnode::protocol
