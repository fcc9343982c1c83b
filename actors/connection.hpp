// The connection actor: one per WebSocket, the only owner of its socket's
// outgoing queue, activity clock and close.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "actors/stats.hpp"
#include "actors/transport.hpp"

#include "caf/actor_system.hpp"

namespace hubnode {

// Registers with the hub at once; the socket is accepted or rejected only
// when the hub has answered.
connection_actor spawn_connection(caf::actor_system& sys, connection_settings cfg,
                                  hub_actor hub, presence_actor presence, stats& st,
                                  transport_ptr socket, user_id user,
                                  std::string remote_address);

} // namespace hubnode
