// The presence actor: which users are online, with a grace period after a
// user's last connection on this node closes, and who watches those
// transitions. Standalone it keeps everything in memory; with a redis actor
// (cluster mode) its local truth is mirrored into Redis (SPEC section 4), and
// watchers hear of transitions from the P`presence` channel only.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "src/base/stats.hpp"

#include "caf/actor_system.hpp"

namespace hubnode {

// Cluster mode when `redis` is valid; it then registers this node, clears the
// entries of a previous incarnation of cfg.node_id and starts its heartbeat.
presence_actor spawn_presence(caf::actor_system& sys, presence_settings cfg, stats& st,
                              redis_actor redis = {});

} // namespace hubnode
