// One WebSocket connection's socket side. It implements the transport that
// its connection actor drives, and reports everything it reads back to that
// actor. It owns no protocol state: queueing, limits and the decision to
// close belong to the actor.
#pragma once

#include "src/log.hpp"

#include "actors/transport.hpp"
#include "src/http_routes.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <memory>

namespace hubnode {

namespace beast = boost::beast;
namespace websocket = beast::websocket;

class websocket_session : public transport,
                          public std::enable_shared_from_this<websocket_session> {
public:
  websocket_session(boost::asio::ip::tcp::socket&& socket, server_context& ctx);

  // Spawns the connection actor, which asks the hub to admit `user` and then
  // calls accept() or reject().
  // `expires`: the unix second the connection's JWT expires, if it does.
  void run(http_request req, user_id user, std::optional<std::int64_t> expires = {});

  void accept() override;
  void reject(admission why) override;
  void write(std::vector<payload> frames) override;
  void ping() override;
  void close(std::uint16_t code) override;

private:
  void do_accept();
  void on_accept(beast::error_code ec);
  void do_reject(admission why);
  void do_read();
  void on_read(beast::error_code ec, std::size_t bytes);
  void do_write();
  void on_write(beast::error_code ec, std::size_t bytes);
  void do_ping();
  void do_close(std::uint16_t code);
  void start_close();
  void on_close(beast::error_code ec);
  void fail(beast::error_code ec);
  void drop();

  template <class F>
  void on_strand(F&& f);

  // A plain socket, not a tcp_stream: after the upgrade its two timers
  // would sit unused for the connection's whole life; the WebSocket
  // stream's own timeout bounds the handshake. No permessage-deflate: its
  // zlib state costs more memory than the small JSON frames here save.
  websocket::stream<boost::asio::ip::tcp::socket, false> ws_;
  beast::flat_buffer buffer_;
  server_context& ctx_;
  connection_actor actor_;
  // Held only for a moment, so kept out of line: an idle connection should
  // not carry an empty request and response.
  std::unique_ptr<http_request> request_;    // until accepted or rejected
  std::unique_ptr<http_response> rejection_; // while it is being written
  std::vector<payload> writing_;             // the batch on the wire
  std::size_t write_index_ = 0;
  std::uint64_t write_bytes_ = 0;
  std::unique_ptr<boost::asio::steady_timer> close_deadline_; // only while closing
  std::uint16_t close_code_ = 0;
  bool open_ = false;
  bool ping_pending_ = false;
  bool closing_ = false;
  bool gone_ = false;
};

} // namespace hubnode
