// Cluster mode: Redis mirrors the local truth of this node (SPEC section 4).
// What this node writes, and the resync that makes Redis say again what
// this node knows after it may have lost or missed writes.
#pragma once

#include "src/base/log.hpp"

#include "actors/presence/state.hpp"

#include <cstdint>

#include "caf/result.hpp"

namespace hubnode::presence {

// Registers this node, then clears the entries of a previous incarnation.
void start_mirror(presence_ptr self, redis_actor redis);

// This node's count of `user` (0 during the grace) into Redis, and the user
// into P`online`.
void mirror_count(presence_ptr self, user_id user, std::uint64_t count);
// The grace of `user` is over here.
void mirror_expiry(presence_ptr self, user_id user);

void resync(presence_ptr self);
void on_redis_state(presence_ptr self, bool up);

// Graceful shutdown; always answers true.
caf::result<bool> withdraw(presence_ptr self);

} // namespace hubnode::presence
