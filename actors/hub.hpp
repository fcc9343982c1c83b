// The hub actor: the connections of this node by user, their admission and
// routing to them, and the node-wide ping, stale sweep and shutdown.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "src/base/stats.hpp"

#include "caf/actor_system.hpp"

namespace hubnode {

hub_actor spawn_hub(caf::actor_system& sys, hub_settings cfg, presence_actor presence,
                    stats& st);

} // namespace hubnode
