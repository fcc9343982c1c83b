// The local truth of the presence actor: which users have a connection or a
// grace period on this node, and when a user goes offline here.
#pragma once

#include "src/base/log.hpp"

#include "actors/presence/state.hpp"

#include <cstdint>

namespace hubnode::presence {

// The user's entry, or nullptr when the user is offline here.
const user_entry* local_entry(presence_ptr self, user_id user);

void on_connected(presence_ptr self, user_id user);
void on_disconnected(presence_ptr self, user_id user);
// The grace timer armed by the last disconnect of the user in `epoch`.
void on_grace(presence_ptr self, user_id user, std::uint64_t epoch);
void on_hold_timer(presence_ptr self);

} // namespace hubnode::presence
