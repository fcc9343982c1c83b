// What every session of the server needs to reach: the actor system, the
// node's actors, its counters and its options. Owned by main(), outlives
// every session.
#pragma once

#include "src/base/log.hpp"

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "src/base/options.hpp"
#include "src/base/stats.hpp"
#include "src/net/admissions.hpp"
#include "src/net/open_sockets.hpp"

#include <atomic>

#include "caf/actor_system.hpp"

namespace hubnode {

struct server_context {
  caf::actor_system& system;
  hub_actor hub;
  presence_actor presence;
  stats& st;
  const node_options& opt;
  connection_settings_ptr connection;
  admissions& admitting;
  // Cleared at shutdown, so /readyz turns 503 while clients are closed.
  std::atomic<bool> accepting{true};
  open_sockets sockets{};
  channels_actor channels{};
};

} // namespace hubnode
