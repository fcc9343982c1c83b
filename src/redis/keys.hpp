// Every Redis key and channel of a node, under one prefix P (SPEC section 4),
// named in this one place for presence, delivery and the reaper alike.
#pragma once

#include "src/base/types.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace hubnode {

struct redis_keys {
  explicit redis_keys(std::string prefix);

  std::string prefix;
  std::string online;       // P`online`, SET of user ids
  std::string nodes;        // P`nodes`, SET of registered node ids
  std::string channel;      // P`presence`, the presence event channel
  std::string user_pattern; // SCAN MATCH pattern of every P`presence:ID`

  std::string user(user_id user) const;             // P`presence:ID`, HASH
  std::string node(std::string_view node_id) const; // P`node:ID`, heartbeat
  std::string delivery(user_id user) const;         // P`user:ID`, delivery channel
  std::string publications(std::string_view channel) const; // P`chan:NAME`, pub/sub

  // The streams of SPEC section 8: P`{u:ID}:log` (a LIST of the newest
  // entries) and P`{u:ID}:meta` (HASH epoch, top) for a user,
  // P`{c:NAME}:...` for a channel; the braces make both one hash slot.
  std::string user_stream(user_id user) const;
  std::string channel_stream(std::string_view channel) const;
  static std::string log_of(const std::string& stream) { return stream + ":log"; }
  static std::string meta_of(const std::string& stream) { return stream + ":meta"; }

  // The user of a P`presence:ID` key; nothing for any other key.
  std::optional<user_id> user_of(std::string_view key) const;
  // The user id text of a P`user:ID` channel; nothing for any other channel.
  std::optional<std::string_view> delivery_user(std::string_view channel) const;
  // The name of a P`chan:NAME` channel; nothing for any other channel.
  std::optional<std::string_view> channel_of(std::string_view channel) const;
};

} // namespace hubnode
