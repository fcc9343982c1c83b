// One plain HTTP connection: reads requests (keep-alive), answers them through
// http_routes, and hands an accepted /ws upgrade over to a websocket_session.
#pragma once

#include "src/base/log.hpp"

#include "src/net/admissions.hpp"
#include "src/net/http_routes.hpp"
#include "src/net/open_sockets.hpp"

#include <boost/beast/core.hpp>
#include <memory>
#include <optional>

namespace hubnode {

namespace beast = boost::beast;

class http_session : public closable, public std::enable_shared_from_this<http_session> {
public:
  http_session(beast::tcp_stream&& stream, server_context& ctx);

  void run();
  void force_close() override;

private:
  void do_read();
  void on_read(beast::error_code ec, std::size_t bytes);
  void handle(http_request req);
  void upgrade(http_request req);
  void send(http_response res);
  void on_write(bool close, beast::error_code ec, std::size_t bytes);
  void fail(beast::error_code ec, const char* what);
  void do_close();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  server_context& ctx_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = false;
  bool served_ = false;
  admissions::token handshake_; // until the first request is answered or upgraded
  open_socket listed_;          // last: leaves the list first
};

} // namespace hubnode
