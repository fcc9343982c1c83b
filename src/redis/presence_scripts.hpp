// Presence in Redis (SPEC section 4): the presence event, and
// the Lua scripts that change several keys at once, each as the command the
// redis actor runs ({"EVALSCRIPT", lua, numkeys, keys..., args...}).
#pragma once

#include "src/base/types.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/types.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hubnode {

// {"userId":"ID","online":BOOL,"node":"NODEID","ts":MS}
std::string presence_event(user_id user, bool online, std::string_view node,
                           std::int64_t ts_ms);

namespace presence_scripts {

// The Lua sources, for tests to tell which script a command runs.
extern const std::string_view connect_lua;
extern const std::string_view expire_lua;
extern const std::string_view reap_lua;

// `node` has `count` connections of `user` (0: in its grace period). Sets its
// field and makes sure the user is in P`online`, publishing `online_event`
// when it was not. Answers 1 when it published.
redis_command connect(const redis_keys& keys, user_id user, std::string_view node,
                      std::uint64_t count, std::string_view online_event);

// The grace period of `user` on `node` has ended: drops its field if it is
// still 0, and the user from P`online` when no node has a field left,
// publishing `offline_event`. Answers 1 when it published.
redis_command expire(const redis_keys& keys, user_id user, std::string_view node,
                     std::string_view offline_event);

// Removes whatever field `node` has for `user`, and the user from P`online`
// when no node has a field left, publishing `offline_event`. With
// `only_if_dead`, does nothing while P`node:NODE` exists (the node is alive
// again). Answers 1 when it published.
redis_command reap(const redis_keys& keys, user_id user, std::string_view node,
                   std::string_view offline_event, bool only_if_dead);

} // namespace presence_scripts

} // namespace hubnode
