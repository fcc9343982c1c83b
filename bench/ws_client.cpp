#include "bench/ws_client.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <netinet/in.h>

namespace bench {

namespace beast = boost::beast;
namespace http = beast::http;
using opcode = ws::opcode;
using error_code = boost::system::error_code;

namespace {

// Reads are this big unless a frame needs more: an idle connection then
// costs 2 KiB of buffer, a busy one still gets dozens of frames per read.
constexpr std::size_t min_read = 2048;
// SPEC's largest message is 64 KiB; anything far above is a broken stream.
constexpr std::uint64_t max_frame = 1 << 20;

constexpr std::string_view welcome_prefix = R"({"type":"welcome")";

std::array<std::uint8_t, 4> mask_for(std::size_t slot) {
  // RFC 6455 wants unpredictable masks against proxy cache poisoning; on
  // loopback to our own node a well-mixed value per connection is enough.
  std::uint64_t x = (slot + 1) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 31;
  return {static_cast<std::uint8_t>(x), static_cast<std::uint8_t>(x >> 8),
          static_cast<std::uint8_t>(x >> 16), static_cast<std::uint8_t>(x >> 24)};
}

std::uint64_t big_endian(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v = (v << 8) | p[i];
  return v;
}

} // namespace

struct ws_client::handshake {
  std::string request;
  http::response_parser<http::empty_body> response;
};

ws_client::ws_client(net::io_context& io, listener& events, std::size_t slot)
    : socket_(io), events_(events), slot_(slot), read_size_(min_read),
      mask_(mask_for(slot)) {}

ws_client::~ws_client() = default;

void ws_client::connect(const tcp::endpoint& server, const net::ip::address& source,
                        const std::string& target) {
  error_code ec;
  socket_.open(server.protocol(), ec);
  if (!ec && server.protocol() == tcp::v4()) {
    // Lets the kernel pick the source port at connect time, per destination:
    // a plain bind() would reserve the port for every destination at once.
    const int on = 1;
    ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on,
                 sizeof on);
  }
  if (!ec)
    socket_.bind(tcp::endpoint(source, 0), ec);
  if (!ec)
    socket_.set_option(tcp::no_delay(true), ec);
  if (ec) {
    // Reported from the event loop, never from inside the caller.
    net::post(
        socket_.get_executor(),
        beast::bind_front_handler(&ws_client::fail, shared_from_this(), "socket", ec));
    return;
  }
  handshake_ = std::make_unique<handshake>();
  handshake_->request = "GET " + target +
                        " HTTP/1.1\r\nHost: " + server.address().to_string() + ":" +
                        std::to_string(server.port()) +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n";
  socket_.async_connect(
      server, beast::bind_front_handler(&ws_client::on_connect, shared_from_this()));
}

void ws_client::on_connect(error_code ec) {
  if (!going_on(ec, "connect"))
    return;
  net::async_write(
      socket_, net::buffer(handshake_->request),
      beast::bind_front_handler(&ws_client::on_request_written, shared_from_this()));
}

void ws_client::on_request_written(error_code ec, std::size_t) {
  if (!going_on(ec, "upgrade request"))
    return;
  http::async_read_header(
      socket_, in_, handshake_->response,
      beast::bind_front_handler(&ws_client::on_response, shared_from_this()));
}

void ws_client::on_response(error_code ec, std::size_t) {
  if (!going_on(ec, "upgrade response"))
    return;
  const auto status = handshake_->response.get().result_int();
  handshake_.reset();
  if (status != 101)
    return end("http " + std::to_string(status));
  state_ = state::open;
  // Frames that came with the response are already in in_.
  if (parse_frames())
    read_more();
}

void ws_client::read_more() {
  socket_.async_read_some(
      in_.prepare(read_size_),
      beast::bind_front_handler(&ws_client::on_read, shared_from_this()));
}

void ws_client::on_read(error_code ec, std::size_t bytes) {
  if (ec == net::error::eof && state_ == state::closing)
    return end("closed"); // the node closed without its close frame
  if (!going_on(ec, "read"))
    return;
  in_.commit(bytes);
  if (parse_frames())
    read_more();
}

// Handles every complete frame in in_; false once the connection has ended.
bool ws_client::parse_frames() {
  read_size_ = min_read;
  while (state_ != state::ended) {
    const auto* p = static_cast<const std::uint8_t*>(in_.data().data());
    const std::size_t have = in_.size();
    if (have < 2)
      return true;
    std::size_t header = 2;
    std::uint64_t length = p[1] & 0x7F;
    if (length == 126)
      header = 4;
    else if (length == 127)
      header = 10;
    if ((p[1] & 0x80) != 0) {
      end("masked frame from the server");
      return false;
    }
    if (have < header)
      return true;
    if (header > 2)
      length = big_endian(p + 2, static_cast<int>(header - 2));
    if (length > max_frame) {
      end("frame too large");
      return false;
    }
    if (have < header + length) {
      read_size_ = std::max<std::size_t>(min_read, header + length - have);
      return true;
    }
    on_frame(static_cast<opcode>(p[0] & 0x0F), (p[0] & 0x80) != 0,
             std::string_view(reinterpret_cast<const char*>(p + header), length));
    in_.consume(header + length);
  }
  return false;
}

void ws_client::on_frame(opcode op, bool fin, std::string_view payload) {
  switch (op) {
  case opcode::text:
    if (fin)
      return on_message(payload);
    fragments_.assign(payload);
    return;
  case opcode::continuation:
    fragments_.append(payload);
    if (fin) {
      on_message(fragments_);
      fragments_.clear();
    }
    return;
  case opcode::ping:
    return write_frame(opcode::pong, payload);
  case opcode::pong:
    return;
  case opcode::close:
    if (state_ == state::closing)
      return end("closed");
    return end(payload.size() >= 2
                   ? "close " +
                         std::to_string(big_endian(
                             reinterpret_cast<const std::uint8_t*>(payload.data()), 2))
                   : std::string("close"));
  case opcode::binary:
    return end("binary frame");
  default:
    return end("unknown opcode");
  }
}

void ws_client::on_message(std::string_view text) {
  if (welcomed_)
    return events_.on_text(*this, text);
  if (text.substr(0, welcome_prefix.size()) != welcome_prefix)
    return end("first frame is not a welcome");
  welcomed_ = true;
  events_.on_welcome(*this, text);
}

void ws_client::send_text(std::string_view payload) {
  if (state_ == state::open)
    write_frame(opcode::text, payload);
}

void ws_client::write_frame(opcode op, std::string_view payload) {
  const std::size_t n = payload.size();
  char header[14];
  std::size_t used = 2;
  header[0] = static_cast<char>(0x80 | static_cast<std::uint8_t>(op));
  if (n < 126) {
    header[1] = static_cast<char>(0x80 | n);
  } else if (n < 65536) {
    header[1] = static_cast<char>(0x80 | 126);
    header[2] = static_cast<char>(n >> 8);
    header[3] = static_cast<char>(n);
    used = 4;
  } else {
    header[1] = static_cast<char>(0x80 | 127);
    for (int i = 0; i < 8; ++i)
      header[2 + i] = static_cast<char>(static_cast<std::uint64_t>(n) >> (56 - 8 * i));
    used = 10;
  }
  std::copy(mask_.begin(), mask_.end(), header + used);
  used += 4;
  out_.append(header, used);
  const std::size_t at = out_.size();
  out_.resize(at + n);
  for (std::size_t i = 0; i < n; ++i)
    out_[at + i] = static_cast<char>(payload[i] ^ mask_[i & 3]);
  if (!write_pending_)
    flush();
}

void ws_client::flush() {
  write_pending_ = true;
  writing_.swap(out_);
  out_.clear();
  net::async_write(socket_, net::buffer(writing_),
                   beast::bind_front_handler(&ws_client::on_write, shared_from_this()));
}

void ws_client::on_write(error_code ec, std::size_t) {
  if (!going_on(ec, "write"))
    return;
  write_pending_ = false;
  if (!out_.empty())
    flush();
}

void ws_client::close() {
  if (state_ != state::open)
    return;
  write_frame(opcode::close, std::string_view("\x03\xE8", 2)); // 1000, normal closure
  state_ = state::closing;
}

void ws_client::abort() {
  state_ = state::ended;
  error_code ignored;
  socket_.close(ignored);
}

void ws_client::end(std::string_view why) {
  if (state_ == state::ended)
    return;
  abort();
  events_.on_end(*this, why);
}

bool ws_client::going_on(error_code ec, const char* what) {
  if (state_ == state::ended)
    return false; // aborted: the socket is closed and nobody listens
  if (ec)
    fail(what, ec);
  return !ec;
}

void ws_client::fail(const char* what, error_code ec) {
  end(std::string(what) + ": " + ec.message());
}

} // namespace bench
