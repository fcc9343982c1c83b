// Accepts TCP connections and starts an http_session on each, on its own
// strand when several io threads run. With one io thread there is nothing to
// serialize: a socket on the plain executor lets an actor running on that
// thread write to it at once instead of through a strand's queue.
//
// Accepting runs on a thread of its own. On the io threads an accept waited
// behind every handler and actor job queued before it, and after a node-wide
// disconnect that queue is long: in a 5,000-client reconnect storm the
// kernel's accept queue (net.core.somaxconn, 4096) overflowed, and every
// client whose SYN was dropped came back only after TCP's 1 s retransmission,
// past its grace period (382 to 903 users offline per storm). Taken at once,
// the backlog waits in user space instead, where presence sees it
// (admissions) and nothing drops.
#pragma once

#include "src/base/log.hpp"

#include "src/net/server_context.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <thread>

namespace hubnode {

class listener : public std::enable_shared_from_this<listener> {
public:
  listener(boost::asio::io_context& ioc, server_context& ctx);

  // Binds and listens; on failure returns why (e.g. the port is in use).
  std::string open(const std::string& host, std::uint16_t port);

  // The bound endpoint, with the kernel's port when port 0 was asked for.
  boost::asio::ip::tcp::endpoint local_endpoint() const;

  ~listener();

  // Starts the accept thread.
  void run();
  // Closes the listening socket and joins the accept thread.
  void stop();

private:
  boost::asio::any_io_executor socket_executor();
  void do_accept();
  void on_accept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& ioc_; // the sessions'
  server_context& ctx_;
  boost::asio::io_context accept_ioc_{1};
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  std::thread thread_;
};

} // namespace hubnode
