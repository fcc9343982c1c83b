// How the parts of the presence actor talk to Redis (cluster mode): every
// exchange through the one redis_batch of the mirror state, so that what
// this actor sends reaches Redis in the order sent; the readers of the
// replies; and the SCAN over every P`presence:ID`.
#pragma once

#include "src/base/log.hpp"

#include "actors/presence/state.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>

namespace hubnode::presence {

// Keys per SCAN step and commands per pipeline of a bulk rewrite.
constexpr std::size_t batch_size = 500;

using replies_handler = std::function<void(const redis_replies&)>;
using failure_handler = std::function<void()>;

inline mirror_state& mirror(presence_ptr self) {
  return *self->state.mirror;
}

// Whether this node still writes its presence to Redis.
inline bool mirroring(presence_ptr self) {
  return self->state.mirror && !self->state.mirror->withdrawn;
}

// Every Redis exchange: never blocks this actor, never waits longer than the
// timeout, and a failure is only a warning: the local truth stays, and the
// next resync repairs what Redis missed.
void exchange(presence_ptr self, redis_pipeline pipeline, const char* what,
              replies_handler on_replies, failure_handler on_failure = {});

std::optional<std::int64_t> integer_at(const redis_replies& replies, std::size_t i);

// Every script answers 1 when it published a transition: how many of the
// first `scripts` replies (all when not given) did.
std::size_t
count_published(const redis_replies& replies,
                std::size_t scripts = std::numeric_limits<std::size_t>::max());

// Counts the transitions the scripts of a pipeline made into `which`: online
// or offline transitions made by this node.
replies_handler count_transitions(presence_ptr self, counter stats::*which);

// Events name the node that made the transition, the reaper of a dead node
// included: that is the node whose script published it.
std::string event_of(presence_ptr self, user_id user, bool online);

using batch_handler = std::function<void(const user_list&)>;
using done_handler = std::function<void(bool complete)>;

// Hands the users of every P`presence:ID` to `on_batch`, a SCAN step at a
// time (a user may come twice; every batch handler is idempotent), then
// says whether the walk got to the end.
void scan_users(presence_ptr self, std::string cursor, batch_handler on_batch,
                done_handler on_done);

} // namespace hubnode::presence
