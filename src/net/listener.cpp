#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "http"

#include "src/net/listener.hpp"

#include "src/net/http_session.hpp"
#include "src/net/system_thread.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

namespace hubnode {

namespace net = boost::asio;
using tcp = net::ip::tcp;

listener::listener(net::io_context& ioc, server_context& ctx)
    : ioc_(ioc), ctx_(ctx), acceptor_(accept_ioc_), backoff_(accept_ioc_) {}

// Only for a way out of main that skipped stop().
listener::~listener() {
  accept_ioc_.stop();
  if (thread_.joinable())
    thread_.join();
}

std::string listener::open(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec)
    return fmt::format("bad server.host \"{}\": {}", host, ec.message());
  tcp::endpoint endpoint{address, port};
  auto where = fmt::format("{}:{}", host, port);
  if (acceptor_.open(endpoint.protocol(), ec); ec)
    return fmt::format("cannot open {}: {}", where, ec.message());
  if (acceptor_.set_option(net::socket_base::reuse_address(true), ec); ec)
    return fmt::format("cannot set SO_REUSEADDR on {}: {}", where, ec.message());
  if (acceptor_.bind(endpoint, ec); ec)
    return fmt::format("cannot listen on {}: {}", where, ec.message());
  if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec)
    return fmt::format("cannot listen on {}: {}", where, ec.message());
  ctx_.admitting.listening(acceptor_.native_handle());
  return {};
}

tcp::endpoint listener::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void listener::run() {
  do_accept();
  // Runs until the acceptor is closed and its last handler ran.
  thread_ = system_thread(ctx_.system, "hubnode.accept", [this] { accept_ioc_.run(); });
}

void listener::stop() {
  net::post(accept_ioc_, [this] {
    boost::system::error_code ec;
    ctx_.admitting.listening(-1);
    acceptor_.close(ec);
    backoff_.cancel();
  });
  if (thread_.joinable())
    thread_.join();
}

net::any_io_executor listener::socket_executor() {
  if (ctx_.opt.io_threads == 1)
    return ioc_.get_executor();
  return net::make_strand(ioc_);
}

void listener::do_accept() {
  acceptor_.async_accept(
      socket_executor(),
      beast::bind_front_handler(&listener::on_accept, shared_from_this()));
}

void listener::on_accept(boost::system::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor_.is_open())
    return;
  if (ec) {
    // Out of file descriptors and the like: the error repeats at once, so
    // pause instead of spinning, and keep serving the open connections.
    CAF_LOG_WARNING("accept failed:" << CAF_ARG2("error", ec.message()));
    backoff_.expires_after(std::chrono::milliseconds(50));
    backoff_.async_wait([self = shared_from_this()](boost::system::error_code wait_ec) {
      if (!wait_ec)
        self->do_accept();
    });
    return;
  }
  // Without it Nagle holds a small frame back until the client's delayed
  // ACK arrives, up to 40 ms per message (hubnode-bench measured a p50 of
  // 10.5 ms against 0.8 ms with it). A socket that refuses the option is
  // already broken and fails on its first read.
  boost::system::error_code nodelay_ec;
  socket.set_option(tcp::no_delay(true), nodelay_ec);
  std::make_shared<http_session>(beast::tcp_stream{std::move(socket)}, ctx_)->run();
  do_accept();
}

} // namespace hubnode
