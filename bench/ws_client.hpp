// One WebSocket client connection, as small and cheap as the benchmark needs:
// the upgrade goes through Beast's HTTP parser, frames are read and written
// by hand. Outgoing frames are appended to one buffer while a write is in
// flight, so a burst of sends becomes one write system call, and steady
// traffic allocates nothing once the buffers have grown.
#pragma once

#include "src/wire/websocket_frame.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace bench {

namespace net = boost::asio;
// The opcodes are RFC 6455 constants; nothing else of the node is shared,
// so that a bug in the node's frame layer cannot hide in the generator too.
namespace ws = hubnode::ws;
using tcp = net::ip::tcp;

class ws_client : public std::enable_shared_from_this<ws_client> {
public:
  // Called on the io_context's thread. A listener may send, close or abort
  // any client from inside these calls.
  class listener {
  public:
    // The node's welcome frame arrived: the connection is registered.
    virtual void on_welcome(ws_client& client, std::string_view welcome) = 0;
    // Every later text frame.
    virtual void on_text(ws_client& client, std::string_view frame) = 0;
    // The connection is over: `why` is "closed" after close() completed,
    // else what went wrong. Not called after abort().
    virtual void on_end(ws_client& client, std::string_view why) = 0;

  protected:
    ~listener() = default;
  };

  ws_client(net::io_context& io, listener& events, std::size_t slot);
  ~ws_client();

  // Binds to `source` (port chosen by the kernel at connect time), connects,
  // upgrades with GET `target` (path and query).
  void connect(const tcp::endpoint& server, const net::ip::address& source,
               const std::string& target);
  // Queues one text frame; ignored unless the connection is open.
  void send_text(std::string_view payload);
  // Close handshake (1000); on_end("closed") once the node has answered.
  void close();
  // Drops the socket at once, as a crashed client would.
  void abort();

  bool welcomed() const { return state_ == state::open && welcomed_; }
  std::size_t slot() const { return slot_; }

private:
  enum class state { connecting, open, closing, ended };
  struct handshake;

  void on_connect(boost::system::error_code ec);
  void on_request_written(boost::system::error_code ec, std::size_t);
  void on_response(boost::system::error_code ec, std::size_t);
  void read_more();
  void on_read(boost::system::error_code ec, std::size_t bytes);
  bool parse_frames();
  void on_frame(ws::opcode op, bool fin, std::string_view payload);
  void on_message(std::string_view text);
  void write_frame(ws::opcode op, std::string_view payload);
  void flush();
  void on_write(boost::system::error_code ec, std::size_t);
  void end(std::string_view why);
  // Whether a completed operation may go on: not after abort(), and not
  // after an error, which ends the connection.
  bool going_on(boost::system::error_code ec, const char* what);
  void fail(const char* what, boost::system::error_code ec);

  tcp::socket socket_;
  listener& events_;
  std::size_t slot_;
  state state_ = state::connecting;
  bool welcomed_ = false;
  std::unique_ptr<handshake> handshake_; // only until the upgrade is done
  boost::beast::flat_buffer in_;
  std::size_t read_size_;
  std::string fragments_; // a text message split into several frames
  std::string out_;       // frames waiting for the write in flight
  std::string writing_;   // the frames of the write in flight
  bool write_pending_ = false;
  std::array<std::uint8_t, 4> mask_;
};

} // namespace bench
