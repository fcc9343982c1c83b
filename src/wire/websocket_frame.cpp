#include "src/wire/websocket_frame.hpp"
#include "src/base/close_code.hpp"

namespace hubnode::ws {

namespace {

using kind = frame_event::kind;

frame_event event(kind type, std::string_view payload = {}, std::uint16_t code = 0) {
  frame_event e;
  e.type = type;
  e.payload = payload;
  e.code = code;
  return e;
}

frame_event violation(std::uint16_t code) {
  return event(kind::violation, {}, code);
}

bool is_known(unsigned op) {
  switch (static_cast<opcode>(op)) {
  case opcode::continuation:
  case opcode::text:
  case opcode::binary:
  case opcode::close:
  case opcode::ping:
  case opcode::pong:
    return true;
  }
  return false;
}

bool is_control(opcode op) {
  return (static_cast<unsigned>(op) & 0x8) != 0;
}

std::uint64_t big_endian(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i)
    v = (v << 8) | p[i];
  return v;
}

// RFC 6455 7.4: the codes a peer may send. 1004-1006 and 1015 are reserved,
// 1016-2999 unassigned; 3000-4999 belong to libraries and applications.
bool is_valid_close_code(std::uint16_t code) {
  if (code >= 3000 && code <= 4999)
    return true;
  return code >= 1000 && code <= 1014 && (code < 1004 || code > 1006);
}

bool is_utf8(std::string_view text) {
  boost::beast::websocket::detail::utf8_checker utf8;
  return utf8.write(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()) &&
         utf8.finish();
}

} // namespace

frame_event frame_decoder::decode(char* data, std::size_t size) {
  if (delivered_) {
    std::string().swap(message_);
    delivered_ = false;
  }
  auto* p = reinterpret_cast<unsigned char*>(data);
  if (size < 2)
    return {};
  bool fin = (p[0] & 0x80) != 0;
  if ((p[0] & 0x70) != 0 || !is_known(p[0] & 0x0F))
    return violation(
        close_code::protocol_error); // RSV bits without an extension, unknown opcode
  auto op = static_cast<opcode>(p[0] & 0x0F);
  if ((p[1] & 0x80) == 0)
    return violation(close_code::protocol_error); // client frames must be masked
  std::uint64_t length = p[1] & 0x7F;
  if (is_control(op) && (!fin || length > max_control_payload))
    return violation(close_code::protocol_error);
  std::size_t header = 2;
  if (length == 126 || length == 127) {
    header += length == 126 ? 2 : 8;
    if (size < header)
      return {};
    auto minimum = length == 126 ? 126u : 0x10000u;
    length = big_endian(p + 2, header - 2);
    // The shortest encoding is required, and a 64-bit length has its top bit clear.
    if (length < minimum || (length >> 63) != 0)
      return violation(close_code::protocol_error);
  }
  if (!is_control(op)) {
    if ((op == opcode::continuation) != in_message_)
      return violation(
          close_code::protocol_error); // a stray continuation or an unfinished message
    // Checked on the header, so a huge frame is refused before it arrives.
    if (length > limit_ - message_.size())
      return violation(close_code::too_big);
    if (op == opcode::binary)
      return violation(close_code::unsupported);
  }
  header += 4;
  if (size < header || size - header < length)
    return {};
  const unsigned char* key = p + header - 4;
  unsigned char* payload = p + header;
  for (std::size_t i = 0; i < length; ++i)
    payload[i] ^= key[i % 4];
  auto event = on_frame(op, fin, {data + header, static_cast<std::size_t>(length)});
  if (event.type != kind::violation)
    event.used = header + length;
  return event;
}

frame_event frame_decoder::on_frame(opcode op, bool fin, std::string_view payload) {
  switch (op) {
  case opcode::ping:
    return event(kind::ping, payload);
  case opcode::pong:
    return event(kind::pong, payload);
  case opcode::close:
    return on_close(payload);
  default:
    return on_text(fin, payload);
  }
}

// UTF-8 is checked fragment by fragment: a code point may be split across
// two fragments, and an invalid one is refused before the message ends.
frame_event frame_decoder::on_text(bool fin, std::string_view payload) {
  if (!in_message_)
    utf8_.reset();
  if (!utf8_.write(reinterpret_cast<const std::uint8_t*>(payload.data()),
                   payload.size()) ||
      (fin && !utf8_.finish()))
    return violation(close_code::invalid_payload);
  if (!in_message_ && fin)
    return event(kind::text, payload); // the common case: no copy
  message_.append(payload);
  in_message_ = !fin;
  if (!fin)
    return event(kind::fragment);
  delivered_ = true;
  return event(kind::text, message_);
}

frame_event frame_decoder::on_close(std::string_view payload) const {
  // Without a code the answer is a normal close, as Beast answered before.
  if (payload.empty())
    return event(kind::close, {}, 1000);
  if (payload.size() == 1)
    return violation(close_code::protocol_error);
  auto code = static_cast<std::uint16_t>(
      big_endian(reinterpret_cast<const unsigned char*>(payload.data()), 2));
  if (!is_valid_close_code(code))
    return violation(close_code::protocol_error);
  if (!is_utf8(payload.substr(2)))
    return violation(close_code::invalid_payload);
  return event(kind::close, {}, code);
}

frame_header encode_header(opcode op, std::uint64_t payload_size) {
  frame_header h;
  h.bytes[0] = static_cast<char>(0x80 | static_cast<unsigned>(op));
  std::size_t length_bytes = 0;
  if (payload_size < 126) {
    h.bytes[1] = static_cast<char>(payload_size);
  } else if (payload_size <= 0xFFFF) {
    h.bytes[1] = 126;
    length_bytes = 2;
  } else {
    h.bytes[1] = 127;
    length_bytes = 8;
  }
  for (std::size_t i = 0; i < length_bytes; ++i)
    h.bytes[2 + i] = static_cast<char>(payload_size >> (8 * (length_bytes - 1 - i)));
  h.size = static_cast<std::uint8_t>(2 + length_bytes);
  return h;
}

std::string encode_control(opcode op, std::string_view payload) {
  auto h = encode_header(op, payload.size());
  std::string frame(h.bytes.data(), h.size);
  frame.append(payload);
  return frame;
}

std::string encode_close(std::uint16_t code) {
  const char payload[] = {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return encode_control(opcode::close, {payload, sizeof payload});
}

} // namespace hubnode::ws
