// hubnode: the whole wiring on one screen.
//
//   config ──> actor system ──> presence <── hub <── connection actors
//                                   ^          ^            ^
//   io threads: listener ──> http_session ──> websocket_session (one per socket)
//
//   cluster mode:  presence ──> redis <── cluster <──> hub, channels
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

#include "actors/channels.hpp"
#include "actors/cluster.hpp"
#include "actors/cluster_channels.hpp"
#include "actors/hub.hpp"
#include "actors/presence.hpp"
#include "actors/redis_commands.hpp"
#include "src/config.hpp"
#include "src/net/io_pool.hpp"
#include "src/net/io_scheduler.hpp"
#include "src/net/listener.hpp"
#include "src/net/shutdown.hpp"

#include <boost/asio/signal_set.hpp>
#include <future>
#include <iostream>

#include "caf/actor_system.hpp"
#include "caf/send.hpp"

using namespace hubnode;
namespace net = boost::asio;

namespace {

// The node's long-lived actors; redis and cluster only in cluster mode.
struct node_actors {
  redis_actor redis;
  presence_actor presence;
  hub_actor hub;
  cluster_actor cluster;
  channels_actor channels;
};

// Nothing here waits for Redis: a node starts while Redis is down.
node_actors spawn_actors(caf::actor_system& system, const node_options& opt, stats& st,
                         const std::shared_ptr<admissions>& admitting) {
  node_actors a;
  auto presence_cfg = make_presence_settings(opt);
  presence_cfg.admitting = [admitting] { return admitting->pending(); };
  if (!cluster_mode(opt)) {
    a.presence = spawn_presence(system, presence_cfg, st);
    auto hub_cfg = make_hub_settings(opt);
    a.hub = spawn_hub(system, hub_cfg, a.presence, st);
    a.channels = spawn_channels(system, std::move(hub_cfg), st);
    return a;
  }
  auto redis_cfg = make_redis_settings(opt);
  auto hub_cfg = make_hub_settings(opt);
  a.redis = spawn_redis(system, redis_cfg, st);
  a.presence = spawn_presence(system, presence_cfg, st, a.redis);
  a.hub = spawn_hub(system, hub_cfg, a.presence, st);
  a.cluster = spawn_cluster(system, redis_cfg, hub_cfg, a.hub, a.presence, a.redis, st);
  auto channels = spawn_cluster_channels(system, std::move(hub_cfg), a.cluster, st);
  a.channels = channels;
  // These arrive before the listener opens, so before any connection.
  caf::anon_send(a.hub, cluster_atom::value, a.cluster);
  caf::anon_send(a.cluster, feed_atom::value, channels);
  for (auto listener : {caf::actor_cast<redis_listener>(a.presence),
                        caf::actor_cast<redis_listener>(channels)})
    caf::anon_send(a.redis, listen_atom::value, listener);
  return a;
}

// Installed before the node says it listens, so a signal sent right after
// the startup line is never lost to the default handler.
std::future<int> catch_signals(net::signal_set& signals) {
  auto caught = std::make_shared<std::promise<int>>();
  signals.async_wait([caught](auto, int signal) { caught->set_value(signal); });
  return caught->get_future();
}

// The actor system's destructor waits for every actor, so the long-lived
// ones are told to stop on every way out of main.
void stop_actors(const node_actors& a) {
  caf::anon_send_exit(a.hub, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(a.presence, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(a.channels, caf::exit_reason::user_shutdown);
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
  ctx.channels = actors.channels;
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
  shut_down(ctx, *lst);
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
