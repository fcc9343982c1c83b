#include "src/base/log.hpp"

// The listener on real loopback sockets: it accepts on a thread of its own,
// so connections leave the kernel's accept queue (which drops SYNs once
// full) however long the io threads take to get to them.

#include "src/config.hpp"
#include "src/net/listener.hpp"
#include "tests/unit/real_system.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <doctest/doctest.h>
#include <memory>
#include <vector>

using namespace hubnode;
using namespace hubnode::test;
namespace net = boost::asio;
using tcp = net::ip::tcp;

TEST_CASE_FIXTURE(real_system, "listener: accepts while the io threads are busy") {
  stats st;
  node_options opt;
  admissions admitting;
  server_context ctx{
      sys,
      {},
      {},
      st,
      opt,
      std::make_shared<const connection_settings>(make_connection_settings(opt)),
      admitting};
  // Never run: the io threads busy with other work, as after a node-wide
  // disconnect. Destroyed before ctx, with the sessions it holds.
  net::io_context sessions;
  auto lst = std::make_shared<listener>(sessions, ctx);
  REQUIRE(lst->open("127.0.0.1", 0).empty());
  lst->run();
  tcp::endpoint server{net::ip::make_address("127.0.0.1"), lst->local_endpoint().port()};

  constexpr std::size_t clients = 64;
  net::io_context client_io;
  std::vector<tcp::socket> sockets;
  for (std::size_t i = 0; i < clients; ++i)
    sockets.emplace_back(client_io).connect(server);
  CHECK(eventually([&] { return ctx.sockets.count() == clients; }));
  CHECK(admitting.pending()); // their handshakes have not even begun
  lst->stop();
}
