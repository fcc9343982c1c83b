// The cluster actor (cluster mode only): cross-node delivery over Redis
// pub/sub. It owns this node's subscriptions to the P`user:ID` channels of its
// local users and to P`presence`, publishes what the hub routes, hands what
// other nodes published to the hub, and presence events to the presence actor.
//
// Wire format of a P`user:ID` message: "<origin node id>\n<message frame>". The
// origin has already delivered to its own connections, so it drops its own
// messages: every connection gets each message exactly once.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "src/base/stats.hpp"

#include <functional>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"

namespace hubnode {

// Spawns the pub/sub connection, subscribed to `channels`, whose messages go
// to `sink`.
using subscriber_factory =
    std::function<subscriber_actor(caf::actor sink, std::vector<std::string> channels)>;

// The node's cluster actor with its own subscriber (spawn_subscriber).
cluster_actor spawn_cluster(caf::actor_system& sys, redis_settings cfg, hub_actor hub,
                            presence_actor presence, redis_actor redis, stats& st);

// The same with the subscriber made by `make_subscriber` (tests use a fake).
cluster_actor spawn_cluster(caf::actor_system& sys, redis_settings cfg, hub_actor hub,
                            presence_actor presence, redis_actor redis, stats& st,
                            subscriber_factory make_subscriber);

namespace cluster_wire {

// "<node_id>\n<frame>", the payload of a P`user:ID` message.
std::string encode(std::string_view node_id, std::string_view frame);

// Splits a P`user:ID` payload into origin and frame; false when malformed.
bool decode(std::string_view message, std::string_view& origin, std::string_view& frame);

} // namespace cluster_wire

} // namespace hubnode
