// hubnode: the whole wiring on one screen.
//
//   config ──> actor system ──> presence <── hub <── connection actors
//                                   ^          ^            ^
//   io threads: listener ──> http_session ──> websocket_session (one per socket)
//
// Signals end the node: stop accepting, the hub closes every connection with
// 1001, the io threads drain, exit 0 within server.shutdown-timeout.
#include "src/log.hpp"
#define CAF_LOG_COMPONENT "hub"

#include "actors/hub.hpp"
#include "actors/presence.hpp"
#include "src/config.hpp"
#include "src/listener.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <future>
#include <iostream>
#include <thread>

#include "caf/actor_system.hpp"
#include "caf/scoped_actor.hpp"

using namespace hubnode;
namespace net = boost::asio;

namespace {

std::vector<std::thread> start_io_threads(net::io_context& ioc, std::size_t count,
                                          std::promise<void>& drained) {
  auto running = std::make_shared<std::atomic<std::size_t>>(count);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < count; ++i)
    threads.emplace_back([&ioc, &drained, running] {
      ioc.run();
      if (--*running == 0)
        drained.set_value();
    });
  return threads;
}

// Installed before the node says it listens, so a signal sent right after
// the startup line is never lost to the default handler.
std::future<int> catch_signals(net::signal_set& signals) {
  auto caught = std::make_shared<std::promise<int>>();
  signals.async_wait([caught](auto, int signal) { caught->set_value(signal); });
  return caught->get_future();
}

// Closes every client with 1001 and lets the io threads finish their close
// frames, all within the shutdown timeout.
void shut_down(caf::actor_system& system, server_context& ctx, listener& lst,
               net::io_context& ioc, std::future<void> drained) {
  auto deadline = std::chrono::steady_clock::now() + ctx.opt.shutdown_timeout;
  ctx.accepting = false;
  lst.stop();
  caf::scoped_actor self{system};
  self->request(ctx.hub, ctx.opt.shutdown_timeout, shutdown_atom::value)
      .receive([](bool) {},
               [](caf::error& err) {
                 CAF_LOG_WARNING("connections still open at shutdown timeout"
                                 << CAF_ARG(err));
               });
  if (drained.wait_until(deadline) != std::future_status::ready)
    ioc.stop();
}

// The actor system's destructor waits for every actor, so the long-lived
// ones are told to stop on every way out of main.
void stop_actors(const hub_actor& hub, const presence_actor& presence) {
  caf::anon_send_exit(hub, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(presence, caf::exit_reason::user_shutdown);
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
  caf::actor_system system{cfg};
  stats st;
  auto presence = spawn_presence(system, make_presence_settings(cfg.opt), st);
  auto hub = spawn_hub(system, make_hub_settings(cfg.opt), presence, st);
  server_context ctx{system, hub,     presence,
                     st,     cfg.opt, make_connection_settings(cfg.opt)};

  net::io_context ioc{static_cast<int>(cfg.opt.io_threads)};
  auto lst = std::make_shared<listener>(ioc, ctx);
  if (reason = lst->open(cfg.opt.host, cfg.opt.port); !reason.empty()) {
    std::cerr << "hubnode: " << reason << std::endl;
    stop_actors(hub, presence);
    return 2;
  }
  CAF_LOG_WARNING("auth.mode = userid trusts the client's userId parameter; "
                  "use it for development only");
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  auto signal = catch_signals(signals);
  lst->run();
  std::promise<void> drained;
  auto threads = start_io_threads(ioc, cfg.opt.io_threads, drained);
  auto endpoint = lst->local_endpoint();
  std::cout << "hubnode listening on " << cfg.opt.host << ":" << endpoint.port()
            << " node=" << cfg.opt.node_id << " presence=memory" << std::endl;
  CAF_LOG_INFO("listening" << CAF_ARG2("port", endpoint.port())
                           << CAF_ARG2("node", cfg.opt.node_id));

  auto caught = signal.get();
  CAF_LOG_INFO("stopping on signal" << CAF_ARG(caught));
  shut_down(system, ctx, *lst, ioc, drained.get_future());
  for (auto& thread : threads)
    thread.join();
  stop_actors(hub, presence);
  CAF_LOG_INFO("stopped");
  return 0;
}
