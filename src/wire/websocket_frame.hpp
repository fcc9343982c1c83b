// RFC 6455 framing, server side, without sockets: decodes what clients send
// (masked frames, fragmented text, control frames) and encodes what the
// server sends (unmasked, never fragmented). websocket_session does the I/O
// around it; keeping the rules here lets unit tests and a fuzzer reach every
// one of them without a socket.
#pragma once

#include <array>
#include <boost/beast/websocket/detail/utf8_checker.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hubnode::ws {

enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

constexpr std::size_t max_control_payload = 125;

// What frame_decoder::decode found at the front of its input.
struct frame_event {
  enum class kind : std::uint8_t {
    incomplete, // no whole frame yet: keep the bytes and read more
    fragment,   // a non-final piece of a text message, kept by the decoder
    text,       // a whole text message, valid UTF-8
    ping,
    pong,
    close,    // the client's close frame; `code` is the one to echo
    violation // the client broke the protocol; `code` is the close code to send
  };
  kind type = kind::incomplete;
  // text: the message; ping, pong: the frame's payload. Valid until the next
  // decode().
  std::string_view payload;
  std::uint16_t code = 0;
  std::size_t used = 0; // bytes of the input this event consumed
};

// Decodes one connection's client frames. Between messages it holds nothing
// on the heap: only the fragments of an unfinished text message are kept, and
// released when the message completes.
class frame_decoder {
public:
  explicit frame_decoder(std::size_t max_message_size) : limit_(max_message_size) {}

  // Beast's UTF-8 checker points into itself: a copy would point into the
  // original.
  frame_decoder(const frame_decoder&) = delete;
  frame_decoder& operator=(const frame_decoder&) = delete;

  // Decodes the frame at the front of `data`, unmasking its payload in place.
  // After a violation the stream cannot be read further.
  frame_event decode(char* data, std::size_t size);

private:
  frame_event on_frame(opcode op, bool fin, std::string_view payload);
  frame_event on_text(bool fin, std::string_view payload);
  frame_event on_close(std::string_view payload) const;

  std::string message_; // fragments of the text message in progress
  boost::beast::websocket::detail::utf8_checker utf8_;
  std::size_t limit_;
  bool in_message_ = false;
  bool delivered_ = false; // message_ was handed out by the last decode()
};

// The header of a final, unmasked server frame carrying `payload_size` bytes.
struct frame_header {
  std::array<char, 10> bytes{};
  std::uint8_t size = 0;
};

frame_header encode_header(opcode op, std::uint64_t payload_size);

// A whole control frame; `payload` has at most max_control_payload bytes.
std::string encode_control(opcode op, std::string_view payload = {});

// A close frame carrying `code`.
std::string encode_close(std::uint16_t code);

} // namespace hubnode::ws
