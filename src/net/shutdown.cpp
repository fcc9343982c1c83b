#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "hub"

#include "src/net/shutdown.hpp"

#include <cstdio>
#include <iostream>
#include <thread>
#include <unistd.h>

#include "caf/scoped_actor.hpp"

namespace hubnode {

namespace {

// Sockets still open at the deadline are closed at once. Every session
// refers to the server context, which ends with serve(), so none may be left:
// a closed socket's pending operations end within moments, and should one
// not, the node exits rather than run on with a dangling session.
void close_sockets(open_sockets& sockets) {
  CAF_LOG_WARNING("closing sockets still open at shutdown timeout"
                  << CAF_ARG2("count", sockets.count()));
  sockets.close_all();
  if (sockets.wait_until_none(std::chrono::steady_clock::now() + std::chrono::seconds(1)))
    return;
  std::cerr << "hubnode: sockets still open after closing them; exiting now" << std::endl;
  std::fflush(stdout);
  _exit(0);
}

caf::timespan until(std::chrono::steady_clock::time_point deadline) {
  return std::max(caf::timespan{1}, std::chrono::duration_cast<caf::timespan>(
                                        deadline - std::chrono::steady_clock::now()));
}

} // namespace

void shut_down(server_context& ctx, listener& lst) {
  auto deadline = std::chrono::steady_clock::now() + ctx.opt.shutdown_timeout;
  auto withdrawal =
      cluster_mode(ctx.opt)
          ? std::min<caf::timespan>(ctx.opt.shutdown_timeout / 4, std::chrono::seconds(1))
          : caf::timespan{0};
  ctx.accepting = false;
  lst.stop();
  caf::scoped_actor self{ctx.system};
  self->request(ctx.hub, ctx.opt.shutdown_timeout - withdrawal, shutdown_atom::value)
      .receive([](bool) {},
               [](caf::error& err) {
                 CAF_LOG_WARNING("connections still open at shutdown timeout"
                                 << CAF_ARG(err));
               });
  if (cluster_mode(ctx.opt)) {
    // Let the grace period of the users just closed run out first: a client
    // that reconnects to another node within it keeps its user online, so a
    // rolling restart does not flap presence (SPEC 4.3) and the node still
    // withdraws before it exits (SPEC 4.7).
    auto grace = ctx.opt.grace_period + std::chrono::milliseconds(50);
    std::this_thread::sleep_until(
        std::min(std::chrono::steady_clock::now() + grace, deadline - withdrawal));
    self->request(ctx.presence, until(deadline), withdraw_atom::value)
        .receive([](bool) {},
                 [](caf::error& err) {
                   CAF_LOG_WARNING("presence not withdrawn from Redis" << CAF_ARG(err));
                 });
  }
  if (!ctx.sockets.wait_until_none(deadline))
    close_sockets(ctx.sockets);
}

} // namespace hubnode
