// One WebSocket connection's socket side. It implements the transport that
// its connection actor drives, and reports everything it reads back to that
// actor. It owns no protocol state: queueing, limits and the decision to
// close belong to the actor.
//
// The framing is hubnode's own (websocket_frame.hpp) over a plain socket,
// not Beast's websocket::stream, so that an idle connection holds no read
// buffer: it waits for readability, reads into a buffer of its I/O thread,
// and keeps only the bytes of an incomplete frame.
#pragma once

#include "src/base/log.hpp"

#include "actors/transport.hpp"
#include "src/net/admissions.hpp"
#include "src/net/http_routes.hpp"
#include "src/net/open_sockets.hpp"
#include "src/wire/websocket_frame.hpp"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <cstdint>
#include <memory>

namespace hubnode {

namespace beast = boost::beast;

class websocket_session : public transport,
                          public closable,
                          public std::enable_shared_from_this<websocket_session> {
public:
  // `handshake` ends once the actor has admitted or refused the upgrade.
  websocket_session(boost::asio::ip::tcp::socket&& socket, server_context& ctx,
                    admissions::token handshake);

  // Spawns the connection actor, which asks the hub to admit `user` and then
  // calls accept() or reject().
  // `expires`: the unix second the connection's JWT expires, if it does;
  // `recover`: the position its user's missed messages are replayed from;
  // `grants`: the channels it may use (none: every channel).
  void run(http_request req, user_id user, std::optional<std::int64_t> expires = {},
           recovery_request recover = {}, channel_grants grants = nullptr);

  void accept(payload welcome) override;
  void reject(admission why) override;
  void write(std::vector<payload> frames) override;
  std::uint64_t unsent_bytes() const override;
  void ping() override;
  void close(std::uint16_t code) override;
  void force_close() override;

private:
  // One state instead of a set of flags: every call checks where it is.
  enum class phase : std::uint8_t {
    admitting, // waiting for the actor's accept() or reject()
    upgrading, // the 101 response is being written
    rejecting, // the HTTP error is being written
    open,      // frames flow both ways
    closing,   // a close frame is due once the write on the wire is done
    draining,  // close frame sent, sending side shut: reading until EOF
    gone,
  };
  // What is on the wire; at most one write is in flight.
  enum class wire : std::uint8_t { idle, frames, control, close };

  void do_accept(payload welcome);
  void on_accept(beast::error_code ec, std::size_t bytes);
  void do_reject(admission why);
  void do_read();
  void on_read(beast::error_code ec);
  bool on_bytes(char* data, std::size_t size);
  void hand_over(inbound_batch& requests);
  bool on_event(const ws::frame_event& event);
  void on_client_close(std::uint16_t code);
  void do_write();
  void write_frames();
  std::vector<boost::asio::const_buffer> frame_buffers();
  void write_control(wire kind, std::string frame);
  void on_write(beast::error_code ec, std::size_t bytes);
  void do_ping();
  void do_close(std::uint16_t code);
  void start_closing(std::uint16_t code);
  void on_close_sent();
  void fail(beast::error_code ec);
  void drop();

  template <class F>
  void on_strand(F&& f);

  boost::asio::ip::tcp::socket socket_;
  server_context& ctx_;
  connection_actor actor_;
  ws::frame_decoder decoder_;
  // Held only for a moment, so kept out of line or empty: an idle connection
  // carries no request, response, buffer or timer.
  std::string partial_;                     // the bytes of an incomplete frame
  std::unique_ptr<http_request> request_;   // until accepted or rejected
  std::unique_ptr<http_response> response_; // the rejection, while written
  std::vector<payload> frames_; // the actor's frames (or the welcome) on the wire
  std::vector<payload> queued_; // the actor's frames waiting for the wire
  std::atomic<std::uint64_t> unsent_{0};  // bytes of frames_ and queued_
  std::vector<ws::frame_header> headers_; // their headers
  std::string control_;                   // the control frame (or the 101) on the wire
  std::string pong_;                      // the pong due, a whole frame
  std::unique_ptr<boost::asio::steady_timer> close_deadline_; // only while closing
  std::uint16_t close_code_ = 0;
  phase phase_ = phase::admitting;
  wire wire_ = wire::idle;
  bool reading_ = false;
  bool ping_due_ = false;
  admissions::token handshake_;
  open_socket listed_; // last: leaves the list first
};

} // namespace hubnode
