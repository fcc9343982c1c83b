// Cluster mode: this node's heartbeat in Redis, and the reaper that takes
// the users of dead nodes offline.
#pragma once

#include "src/base/log.hpp"

#include "actors/presence/state.hpp"

namespace hubnode::presence {

// One beat now, the next after heartbeat_interval.
void on_heartbeat(presence_ptr self);
// This node is alive for node_ttl more; then the reaper looks at the others.
void beat(presence_ptr self);

} // namespace hubnode::presence
