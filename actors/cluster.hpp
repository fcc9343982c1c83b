// The cluster actor (cluster mode only): cross-node delivery over Redis
// pub/sub and the streams of SPEC section 8 in Redis. It owns this node's
// subscriptions to the P`user:ID` channels of its local users, the P`chan:NAME`
// channels of its local subscribers and P`presence`; it appends what the hub
// and the channels actor publish (src/redis/stream_scripts.hpp: append and
// publish in one step), reads streams for them, hands every entry of a
// subscribed stream to its owner (this node's own entries too: the feed is
// what orders them) and presence events to the presence actor.
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

// The node's cluster actor with its own subscriber (spawn_subscriber);
// `streams` gives the history sizes, the ttl and the incarnation for epochs.
cluster_actor spawn_cluster(caf::actor_system& sys, redis_settings cfg,
                            hub_settings streams, hub_actor hub, presence_actor presence,
                            redis_actor redis, stats& st);

// The same with the subscriber made by `make_subscriber` (tests use a fake).
cluster_actor spawn_cluster(caf::actor_system& sys, redis_settings cfg,
                            hub_settings streams, hub_actor hub, presence_actor presence,
                            redis_actor redis, stats& st,
                            subscriber_factory make_subscriber);

} // namespace hubnode
