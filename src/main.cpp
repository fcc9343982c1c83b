// hubnode: the whole wiring on one screen.
//
//   config ──> actor system ──> presence <── hub <── connection actors
//                                   ^          ^            ^
//   io threads: listener ──> http_session ──> websocket_session (one per socket)
//
//   cluster mode:  presence ──> redis <── cluster <──> hub
//                      ^                     ^
//                      └── event ─────────── subscriber (Redis pub/sub)
//
// Under scheduler.policy 'io' (the default) the actors run on the io threads
// too, so a message from a client is read, routed and written without
// crossing threads (src/net/io_scheduler.hpp).
//
// Signals end the node: stop accepting, the hub closes every connection with
// 1001, presence withdraws this node from Redis, the sockets drain, exit 0
// within server.shutdown-timeout.
#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "hub"

#include "actors/cluster.hpp"
#include "actors/hub.hpp"
#include "actors/presence.hpp"
#include "actors/redis_commands.hpp"
#include "src/config.hpp"
#include "src/net/io_pool.hpp"
#include "src/net/io_scheduler.hpp"
#include "src/net/listener.hpp"

#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <future>
#include <iostream>
#include <thread>
#include <unistd.h>

#include "caf/actor_system.hpp"
#include "caf/scoped_actor.hpp"

using namespace hubnode;
namespace net = boost::asio;

namespace {

// The node's long-lived actors; redis and cluster only in cluster mode.
struct node_actors {
  redis_actor redis;
  presence_actor presence;
  hub_actor hub;
  cluster_actor cluster;
};

// Nothing here waits for Redis: a node starts while Redis is down.
node_actors spawn_actors(caf::actor_system& system, const node_options& opt, stats& st,
                         const std::shared_ptr<admissions>& admitting) {
  node_actors a;
  auto presence_cfg = make_presence_settings(opt);
  presence_cfg.admitting = [admitting] { return admitting->pending(); };
  if (!cluster_mode(opt)) {
    a.presence = spawn_presence(system, presence_cfg, st);
    a.hub = spawn_hub(system, make_hub_settings(opt), a.presence, st);
    return a;
  }
  auto redis_cfg = make_redis_settings(opt);
  a.redis = spawn_redis(system, redis_cfg, st);
  a.presence = spawn_presence(system, presence_cfg, st, a.redis);
  a.hub = spawn_hub(system, make_hub_settings(opt), a.presence, st);
  a.cluster = spawn_cluster(system, redis_cfg, a.hub, a.presence, a.redis, st);
  // Both arrive before the listener opens, so before any connection.
  caf::anon_send(a.hub, cluster_atom::value, a.cluster);
  caf::anon_send(a.redis, listen_atom::value,
                 caf::actor_cast<redis_listener>(a.presence));
  return a;
}

// Installed before the node says it listens, so a signal sent right after
// the startup line is never lost to the default handler.
std::future<int> catch_signals(net::signal_set& signals) {
  auto caught = std::make_shared<std::promise<int>>();
  signals.async_wait([caught](auto, int signal) { caught->set_value(signal); });
  return caught->get_future();
}

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

// Closes every client with 1001, withdraws this node's presence (cluster
// mode) and lets the sockets send their close frames, all within the
// shutdown timeout. Clients that do not go away in time leave the withdrawal
// a quarter of the budget (at most 1 s).
void shut_down(caf::actor_system& system, server_context& ctx, const node_actors& a,
               listener& lst) {
  auto deadline = std::chrono::steady_clock::now() + ctx.opt.shutdown_timeout;
  auto withdrawal = a.cluster ? std::min<caf::timespan>(ctx.opt.shutdown_timeout / 4,
                                                        std::chrono::seconds(1))
                              : caf::timespan{0};
  ctx.accepting = false;
  lst.stop();
  caf::scoped_actor self{system};
  self->request(ctx.hub, ctx.opt.shutdown_timeout - withdrawal, shutdown_atom::value)
      .receive([](bool) {},
               [](caf::error& err) {
                 CAF_LOG_WARNING("connections still open at shutdown timeout"
                                 << CAF_ARG(err));
               });
  if (a.cluster) {
    // Let the grace period of the users just closed run out first: a client
    // that reconnects to another node within it keeps its user online, so a
    // rolling restart does not flap presence (SPEC 4.3) and the node still
    // withdraws before it exits (SPEC 4.7).
    auto grace = ctx.opt.grace_period + std::chrono::milliseconds(50);
    std::this_thread::sleep_until(
        std::min(std::chrono::steady_clock::now() + grace, deadline - withdrawal));
    self->request(a.presence, until(deadline), withdraw_atom::value)
        .receive([](bool) {},
                 [](caf::error& err) {
                   CAF_LOG_WARNING("presence not withdrawn from Redis" << CAF_ARG(err));
                 });
  }
  if (!ctx.sockets.wait_until_none(deadline))
    close_sockets(ctx.sockets);
}

// The actor system's destructor waits for every actor, so the long-lived
// ones are told to stop on every way out of main.
void stop_actors(const node_actors& a) {
  caf::anon_send_exit(a.hub, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(a.presence, caf::exit_reason::user_shutdown);
  if (a.cluster) {
    caf::anon_send_exit(a.cluster, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(a.redis, caf::exit_reason::user_shutdown);
  }
}

// Runs the node until a signal has ended it; 0, or 2 when it cannot listen.
// Every socket is gone when it returns; the actors may still be finishing
// what they had, which is why `st` outlives this.
int serve(caf::actor_system& system, const node_options& opt, io_pool& io, stats& st) {
  auto admitting = std::make_shared<admissions>();
  auto actors = spawn_actors(system, opt, st, admitting);
  server_context ctx{
      system,
      actors.hub,
      actors.presence,
      st,
      opt,
      std::make_shared<const connection_settings>(make_connection_settings(opt)),
      *admitting};
  auto lst = std::make_shared<listener>(io.context(), ctx);
  if (auto reason = lst->open(opt.host, opt.port); !reason.empty()) {
    std::cerr << "hubnode: " << reason << std::endl;
    stop_actors(actors);
    return 2;
  }
  if (opt.auth_mode == "userid")
    CAF_LOG_WARNING("auth.mode = userid trusts the client's userId parameter; "
                    "use it for development only");
  net::signal_set signals{io.context(), SIGINT, SIGTERM};
  auto signal = catch_signals(signals);
  lst->run();
  auto endpoint = lst->local_endpoint();
  std::cout << "hubnode listening on " << opt.host << ":" << endpoint.port()
            << " node=" << opt.node_id
            << " presence=" << (cluster_mode(opt) ? "redis" : "memory") << std::endl;
  CAF_LOG_INFO("listening" << CAF_ARG2("port", endpoint.port())
                           << CAF_ARG2("node", opt.node_id));

  auto caught = signal.get();
  CAF_LOG_INFO("stopping on signal" << CAF_ARG(caught));
  shut_down(system, ctx, actors, *lst);
  stop_actors(actors);
  CAF_LOG_INFO("stopped");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  hubnode_config cfg;
  std::string reason;
  switch (load_config(cfg, argc, argv, reason)) {
  case startup::help:
    std::cout << cfg.help();
    return 0;
  case startup::bad_config:
    std::cerr << "hubnode: " << reason << std::endl;
    return 2;
  case startup::run:
    break;
  }
  io_pool io{cfg.opt.io_threads};
  io_scheduler::install(cfg, io);
  // Before the actor system, so that it ends after the system's last actor.
  stats st;
  caf::actor_system system{cfg};
  // Under scheduler.policy 'io' the actor system starts the io threads and
  // stops them after its last actor; under CAF's own schedulers main does.
  bool main_runs_io = !io_scheduler::runs(system);
  if (main_runs_io)
    io.start(system);
  auto code = serve(system, cfg.opt, io, st);
  if (main_runs_io)
    io.stop();
  return code;
}
