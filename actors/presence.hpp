// The presence actor: which users are online on this node, with a grace period
// after a user's last connection closes, and who watches those transitions.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "actors/stats.hpp"

#include "caf/actor_system.hpp"

namespace hubnode {

presence_actor spawn_presence(caf::actor_system& sys, presence_settings cfg, stats& st);

} // namespace hubnode
