// The messages between hubnode's actors, as typed interfaces: every pair of
// actors that talk has its vocabulary checked by the compiler.
//
//   session (src/) --upgraded/frame/activity/written/violation/closed--> connection
//   connection --register/route--> hub --deliver/ping/sweep/shutdown--> connection
//   hub --connected/disconnected/online--> presence --presence_changed--> connection
//   http (src/) --route--> hub, --count--> presence
#pragma once

#include "actors/types.hpp"

#include "caf/atom.hpp"
#include "caf/replies_to.hpp"
#include "caf/typed_actor.hpp"

namespace hubnode {

// Atoms are at most 10 characters in CAF 0.17.
using register_atom = caf::atom_constant<caf::atom("register")>;
using route_atom = caf::atom_constant<caf::atom("route")>;
using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using upgraded_atom = caf::atom_constant<caf::atom("upgraded")>;
using frame_atom = caf::atom_constant<caf::atom("frame")>;
using activity_atom = caf::atom_constant<caf::atom("activity")>;
using written_atom = caf::atom_constant<caf::atom("written")>;
using violation_atom = caf::atom_constant<caf::atom("violation")>;
using closed_atom = caf::atom_constant<caf::atom("closed")>;
using connected_atom = caf::atom_constant<caf::atom("connected")>;
using disconn_atom = caf::atom_constant<caf::atom("disconn")>;
using grace_atom = caf::atom_constant<caf::atom("grace")>;
using online_atom = caf::atom_constant<caf::atom("online")>;
using query_atom = caf::atom_constant<caf::atom("query")>;
using count_atom = caf::atom_constant<caf::atom("count")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using unwatch_atom = caf::atom_constant<caf::atom("unwatch")>;
using changed_atom = caf::atom_constant<caf::atom("changed")>;

// One WebSocket connection of one user.
using connection_actor = caf::typed_actor<
    // from its session
    caf::reacts_to<upgraded_atom>, caf::reacts_to<frame_atom, inbound>,
    caf::reacts_to<activity_atom>, caf::reacts_to<written_atom, std::uint64_t>,
    caf::reacts_to<violation_atom, std::uint16_t>,
    caf::reacts_to<closed_atom, close_reason>,
    // from the hub
    caf::reacts_to<deliver_atom, payload>, caf::reacts_to<ping_atom>,
    caf::reacts_to<sweep_atom>, caf::reacts_to<shutdown_atom>,
    // from presence: a watched user went online (true) or offline (false)
    caf::reacts_to<changed_atom, user_id, bool>>;

// One per node: who is connected here, and routing to them.
using hub_actor = caf::typed_actor<
    // admit a connection; on `admitted` also its connection id
    caf::replies_to<register_atom, user_id, connection_actor>::with<admission,
                                                                    std::string>,
    // deliver `data` (raw JSON) from `from` ("42" or "server") to every connection
    // of the recipient; answers the message id and whether the recipient is online
    caf::replies_to<route_atom, user_id, std::string, std::string>::with<std::string,
                                                                         bool>,
    // timers the hub sends itself
    caf::reacts_to<ping_atom>, caf::reacts_to<sweep_atom>,
    // close every connection with 1001; answers once all are gone
    caf::replies_to<shutdown_atom>::with<bool>>;

// User online/offline with the grace period, queries and watchers.
using presence_actor =
    caf::typed_actor<caf::reacts_to<connected_atom, user_id>,
                     caf::reacts_to<disconn_atom, user_id>,
                     // the grace timer of a user, valid only while its epoch is current
                     caf::reacts_to<grace_atom, user_id, std::uint64_t>,
                     caf::replies_to<online_atom, user_id>::with<bool>,
                     // which of these users are online
                     caf::replies_to<query_atom, user_list>::with<user_list>,
                     // online, and the true number of open connections
                     caf::replies_to<count_atom, user_id>::with<bool, std::uint64_t>,
                     caf::reacts_to<watch_atom, connection_actor, user_list>,
                     caf::reacts_to<unwatch_atom, connection_actor, user_list>>;

} // namespace hubnode
