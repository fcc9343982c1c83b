// The connection actor: one per WebSocket, the only owner of its socket's
// outgoing queue, activity clock and close.
#pragma once

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "actors/transport.hpp"
#include "src/base/stats.hpp"

#include <optional>

#include "caf/actor_system.hpp"

namespace hubnode {

// Registers with the hub at once; the socket is accepted or rejected only
// when the hub has answered. With a `lifetime` (a JWT with `exp`: the time
// left until it expires) the connection is closed with 1008 when it runs out.
// With `recover` the hub replays what the user missed since that position,
// if it can (SPEC section 8). `channels` serves its channel frames (none in
// cluster mode: `unavailable`), limited to `grants` (none: every channel).
connection_actor spawn_connection(caf::actor_system& sys, connection_settings_ptr cfg,
                                  hub_actor hub, presence_actor presence, stats& st,
                                  transport_ptr socket, user_id user,
                                  std::string remote_address,
                                  std::optional<caf::timespan> lifetime = std::nullopt,
                                  recovery_request recover = std::nullopt,
                                  channels_actor channels = {},
                                  channel_grants grants = nullptr);

} // namespace hubnode
