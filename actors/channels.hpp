// The channels actor (SPEC section 8, standalone mode): the one owner of
// every channel's local subscribers and stream. A publication is appended
// and fanned out in one turn, serialised once; a subscribe is answered and
// its missed publications replayed in one turn; so a recovery racing a live
// publication is only the order of this actor's messages.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "src/base/stats.hpp"

#include "caf/actor_system.hpp"

namespace hubnode {

// With the hub's settings: the same node id, incarnation and history options.
standalone_channels_actor spawn_channels(caf::actor_system& sys, hub_settings cfg,
                                         stats& st);

} // namespace hubnode
