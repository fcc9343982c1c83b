// The channels actor in cluster mode (SPEC section 8): the one owner of
// this node's subscribers of every channel. The channels' streams are in
// Redis, changed only by the append script through the cluster actor; each
// publication reaches this node once by the channel's feed and goes to its
// local subscribers from there, serialised once, in offset order.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "src/base/stats.hpp"

#include "caf/actor_system.hpp"

namespace hubnode {

// With the hub's settings: the same node id, incarnation and history options.
cluster_channels_actor spawn_cluster_channels(caf::actor_system& sys, hub_settings cfg,
                                              cluster_actor cluster, stats& st);

} // namespace hubnode
