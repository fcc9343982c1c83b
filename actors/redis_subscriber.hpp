// The subscriber: the pub/sub connection to Redis (cluster mode only). It is
// detached: it blocks on its own thread (a connect, a wait on its socket),
// never on the scheduler's. Any message for it ends that wait at once.
//
// It connects at once when spawned and again after every failure, with a
// backoff from redis_settings::backoff_min doubling to backoff_max, so the
// node starts and runs while Redis is down.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "src/base/stats.hpp"

#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"

namespace hubnode {

// Subscribed to `channels` from the start. `sink` gets (remote, channel,
// message) for every message on a channel it is subscribed to, and
// (redis_state, up) on every up/down transition of this connection (the
// first outcome included); it says up only once Redis has confirmed every
// channel, the first time as after a reconnect. (subscribe, channels)
// answers true once Redis has confirmed them, false at once while the
// connection is down and when it breaks meanwhile. It ends with its sink.
subscriber_actor spawn_subscriber(caf::actor_system& sys, redis_settings cfg, stats& st,
                                  caf::actor sink, std::vector<std::string> channels);

} // namespace hubnode
