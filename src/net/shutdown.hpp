// The graceful stop of SPEC section 1: stop accepting, close every client
// with 1001, withdraw this node's presence (cluster mode), let the sockets
// send their close frames, all within server.shutdown-timeout.
#pragma once

#include "src/base/log.hpp"

#include "src/net/listener.hpp"
#include "src/net/server_context.hpp"

namespace hubnode {

// Returns once every socket is gone. Clients that do not go away in time
// leave the withdrawal a quarter of the budget (at most 1 s); sockets still
// open at the deadline are closed at once.
void shut_down(server_context& ctx, listener& lst);

} // namespace hubnode
