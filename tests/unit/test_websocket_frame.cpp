#include "src/base/log.hpp"

#include "src/base/close_code.hpp"
#include "src/wire/websocket_frame.hpp"

#include <doctest/doctest.h>

using namespace hubnode::ws;
using kind = frame_event::kind;

namespace {

constexpr std::uint8_t fin = 0x80;

// A client frame as RFC 6455 5.2 lays it out, masked unless told otherwise;
// `length_bytes` forces a (non-minimal) 16- or 64-bit length field.
std::string client_frame(std::uint8_t first, std::string_view payload, bool masked = true,
                         int length_bytes = -1) {
  std::string out(1, static_cast<char>(first));
  char mask_bit = masked ? static_cast<char>(0x80) : 0;
  auto n = payload.size();
  if (length_bytes < 0)
    length_bytes = n < 126 ? 0 : n <= 0xFFFF ? 2 : 8;
  out += static_cast<char>(mask_bit | (length_bytes == 0   ? n
                                       : length_bytes == 2 ? 126
                                                           : 127));
  for (int i = length_bytes - 1; i >= 0; --i)
    out += static_cast<char>(static_cast<std::uint64_t>(n) >> (8 * i));
  const char key[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked)
    out.append(key, 4);
  for (std::size_t i = 0; i < n; ++i)
    out += masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i];
  return out;
}

std::string text(std::string_view payload) {
  return client_frame(fin | 0x1, payload);
}

std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string p{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return p.append(reason);
}

// Decodes `wire` to the end (or to the first event that ends the stream) and
// returns every event, copying payloads out of the buffer.
struct decoded {
  kind type;
  std::string payload;
  std::uint16_t code;
};

std::vector<decoded> decode_all(frame_decoder& d, std::string wire) {
  std::vector<decoded> out;
  std::size_t at = 0;
  for (;;) {
    auto e = d.decode(wire.data() + at, wire.size() - at);
    out.push_back({e.type, std::string(e.payload), e.code});
    if (e.type == kind::incomplete || e.type == kind::violation || e.type == kind::close)
      return out;
    at += e.used;
  }
}

decoded first(std::string wire, std::size_t limit = 1024) {
  frame_decoder d(limit);
  return decode_all(d, std::move(wire)).front();
}

} // namespace

TEST_CASE("frame: a masked text frame is unmasked and delivered") {
  auto e = first(text(R"({"type":"ping"})"));
  CHECK(e.type == kind::text);
  CHECK(e.payload == R"({"type":"ping"})");
}

TEST_CASE("frame: an empty text frame is a message") {
  auto e = first(text(""));
  CHECK(e.type == kind::text);
  CHECK(e.payload.empty());
}

TEST_CASE("frame: an unmasked client frame is a protocol error") {
  auto e = first(client_frame(fin | 0x1, "hi", false));
  CHECK(e.type == kind::violation);
  CHECK(e.code == hubnode::close_code::protocol_error);
}

TEST_CASE("frame: RSV bits without an extension are a protocol error") {
  for (std::uint8_t rsv : {0x40, 0x20, 0x10}) {
    CAPTURE(rsv);
    auto e = first(client_frame(fin | rsv | 0x1, "hi"));
    CHECK(e.type == kind::violation);
    CHECK(e.code == hubnode::close_code::protocol_error);
  }
}

TEST_CASE("frame: unknown opcodes are a protocol error") {
  for (std::uint8_t op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    CAPTURE(op);
    auto e = first(client_frame(fin | op, "x"));
    CHECK(e.type == kind::violation);
    CHECK(e.code == hubnode::close_code::protocol_error);
  }
}

TEST_CASE("frame: a binary frame is unsupported data, without waiting for it") {
  auto e = first(client_frame(fin | 0x2, "abc").substr(0, 6));
  CHECK(e.type == kind::violation);
  CHECK(e.code == hubnode::close_code::unsupported);
}

TEST_CASE("frame: control frames are at most 125 bytes and never fragmented") {
  CHECK(first(client_frame(fin | 0x9, std::string(125, 'p'))).type == kind::ping);
  auto big = first(client_frame(fin | 0x9, std::string(126, 'p')));
  CHECK(big.type == kind::violation);
  CHECK(big.code == hubnode::close_code::protocol_error);
  auto fragmented = first(client_frame(0x9, "p"));
  CHECK(fragmented.type == kind::violation);
  CHECK(fragmented.code == hubnode::close_code::protocol_error);
}

TEST_CASE("frame: ping and pong carry their payload") {
  auto ping = first(client_frame(fin | 0x9, "hello"));
  CHECK(ping.type == kind::ping);
  CHECK(ping.payload == "hello");
  auto pong = first(client_frame(fin | 0xA, "x"));
  CHECK(pong.type == kind::pong);
  CHECK(pong.payload == "x");
}

TEST_CASE("frame: a fragmented text message is joined, control frames between") {
  frame_decoder d(1024);
  auto events =
      decode_all(d, client_frame(0x1, "hel") + client_frame(fin | 0x9, "p") +
                        client_frame(0x0, "lo ") + client_frame(fin | 0x0, "you"));
  REQUIRE(events.size() == 5);
  CHECK(events[0].type == kind::fragment);
  CHECK(events[1].type == kind::ping);
  CHECK(events[1].payload == "p");
  CHECK(events[2].type == kind::fragment);
  CHECK(events[3].type == kind::text);
  CHECK(events[3].payload == "hello you");
  CHECK(events[4].type == kind::incomplete);
  // The decoder is ready for the next message afterwards.
  CHECK(decode_all(d, text("next")).front().payload == "next");
}

TEST_CASE("frame: a continuation without a message, or a new message inside one") {
  auto stray = first(client_frame(fin | 0x0, "x"));
  CHECK(stray.type == kind::violation);
  CHECK(stray.code == hubnode::close_code::protocol_error);
  frame_decoder d(1024);
  auto events = decode_all(d, client_frame(0x1, "a") + text("b"));
  CHECK(events.back().type == kind::violation);
  CHECK(events.back().code == hubnode::close_code::protocol_error);
}

TEST_CASE("frame: 16- and 64-bit lengths") {
  std::string medium(300, 'm'), large(70000, 'l');
  auto e16 = first(text(medium), 100000);
  CHECK(e16.type == kind::text);
  CHECK(e16.payload == medium);
  auto e64 = first(text(large), 100000);
  CHECK(e64.type == kind::text);
  CHECK(e64.payload == large);
}

TEST_CASE("frame: lengths must use the shortest encoding and fit 63 bits") {
  CHECK(first(client_frame(fin | 0x1, "short", true, 2)).code ==
        hubnode::close_code::protocol_error);
  CHECK(first(client_frame(fin | 0x1, std::string(300, 'x'), true, 8), 100000).code ==
        hubnode::close_code::protocol_error);
  std::string top_bit("\x81\xff\x80\x00\x00\x00\x00\x00\x00\x00", 10);
  auto e = first(top_bit + "abcd");
  CHECK(e.type == kind::violation);
  CHECK(e.code == hubnode::close_code::protocol_error);
}

TEST_CASE("frame: a frame over the limit is too big as soon as its header is in") {
  CHECK(first(text(std::string(1024, 'x'))).type == kind::text);
  auto header_only = client_frame(fin | 0x1, std::string(1025, 'x')).substr(0, 4);
  auto e = first(header_only);
  CHECK(e.type == kind::violation);
  CHECK(e.code == hubnode::close_code::too_big);
  std::string huge("\x81\xff\x00\x00\x00\x00\x06\x40\x00\x00", 10); // 100 MiB
  CHECK(first(huge).code == hubnode::close_code::too_big);
}

TEST_CASE("frame: the limit applies to the whole message, not each fragment") {
  frame_decoder d(1024);
  auto events = decode_all(d, client_frame(0x1, std::string(600, 'a')) +
                                  client_frame(fin | 0x0, std::string(600, 'b')));
  CHECK(events.front().type == kind::fragment);
  CHECK(events.back().type == kind::violation);
  CHECK(events.back().code == hubnode::close_code::too_big);
}

TEST_CASE("frame: a partial frame is incomplete at every cut") {
  auto wire = text(std::string(200, 'y'));
  for (std::size_t cut = 0; cut < wire.size(); ++cut) {
    CAPTURE(cut);
    frame_decoder d(1024);
    auto head = wire.substr(0, cut);
    auto e = d.decode(head.data(), head.size());
    CHECK(e.type == kind::incomplete);
    CHECK(e.used == 0);
  }
  auto e = first(wire);
  CHECK(e.type == kind::text);
}

TEST_CASE("frame: text must be valid UTF-8") {
  CHECK(first(text("\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80")).type == kind::text);
  for (std::string bad :
       {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok\xe2\x82"}) {
    CAPTURE(bad);
    auto e = first(text(bad));
    CHECK(e.type == kind::violation);
    CHECK(e.code == hubnode::close_code::invalid_payload);
  }
}

TEST_CASE("frame: UTF-8 is checked across fragments") {
  frame_decoder split(1024);
  // U+1F600 split over two fragments is valid.
  auto ok = decode_all(split, client_frame(0x1, "a\xf0\x9f") +
                                  client_frame(fin | 0x0, "\x98\x80"));
  CHECK(ok[1].type == kind::text);
  CHECK(ok[1].payload == "a\xf0\x9f\x98\x80");
  frame_decoder early(1024);
  // An invalid byte is refused in its own fragment, before the message ends.
  auto bad = decode_all(early, client_frame(0x1, "a\xff"));
  CHECK(bad.front().type == kind::violation);
  CHECK(bad.front().code == hubnode::close_code::invalid_payload);
  frame_decoder unfinished(1024);
  auto cut = decode_all(unfinished,
                        client_frame(0x1, "a\xf0\x9f") + client_frame(fin | 0x0, "b"));
  CHECK(cut.back().type == kind::violation);
  CHECK(cut.back().code == hubnode::close_code::invalid_payload);
}

TEST_CASE("frame: close frames carry a code to echo") {
  auto none = first(client_frame(fin | 0x8, ""));
  CHECK(none.type == kind::close);
  CHECK(none.code == 1000);
  for (std::uint16_t code : {1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999}) {
    CAPTURE(code);
    auto e = first(client_frame(fin | 0x8, close_payload(code, "bye")));
    CHECK(e.type == kind::close);
    CHECK(e.code == code);
  }
}

TEST_CASE("frame: a malformed close frame is a protocol error") {
  CHECK(first(client_frame(fin | 0x8, "x")).code == hubnode::close_code::protocol_error);
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
    CAPTURE(code);
    auto e = first(client_frame(fin | 0x8, close_payload(code)));
    CHECK(e.type == kind::violation);
    CHECK(e.code == hubnode::close_code::protocol_error);
  }
  auto reason = first(client_frame(fin | 0x8, close_payload(1000, "\xff")));
  CHECK(reason.type == kind::violation);
  CHECK(reason.code == hubnode::close_code::invalid_payload);
}

TEST_CASE("frame: server headers use the shortest length") {
  auto small = encode_header(opcode::text, 125);
  CHECK(std::string(small.bytes.data(), small.size) == "\x81\x7d");
  auto medium = encode_header(opcode::text, 126);
  CHECK(std::string(medium.bytes.data(), medium.size) ==
        std::string("\x81\x7e\x00\x7e", 4));
  auto large = encode_header(opcode::text, 0x10000);
  CHECK(std::string(large.bytes.data(), large.size) ==
        std::string("\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
}

TEST_CASE("frame: server control frames") {
  CHECK(encode_control(opcode::ping) == std::string("\x89\x00", 2));
  CHECK(encode_control(opcode::pong, "abc") == "\x8a\x03"
                                               "abc");
  CHECK(encode_close(1009) == "\x88\x02\x03\xf1");
}
