// Who is online, for the hub and the HTTP API: from the local truth alone
// standalone, and in cluster mode from Redis for the users of other nodes.
#pragma once

#include "src/base/log.hpp"

#include "actors/presence/state.hpp"

#include <cstdint>

#include "caf/result.hpp"

namespace hubnode::presence {

caf::result<bool> online(presence_ptr self, user_id user);
// The online users of `users`, in their order.
caf::result<user_list> query(presence_ptr self, const user_list& users);
// Whether the user is online, and its connections on every node.
caf::result<bool, std::uint64_t> count(presence_ptr self, user_id user);

} // namespace hubnode::presence
