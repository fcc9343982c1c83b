// libFuzzer target: the client-frame decoder of RFC 6455
// (hubnode::ws::frame_decoder), fed the input in two reads split where the
// first byte says, as the session feeds it. Built and run by tests/fuzz/run.sh.
#include "src/wire/websocket_frame.hpp"

#include <boost/beast/websocket/detail/utf8_checker.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using hubnode::ws::frame_event;
using kind = frame_event::kind;

constexpr std::size_t limit = 4096;

void check(bool ok) {
  if (!ok)
    std::abort();
}

bool is_utf8(std::string_view text) {
  boost::beast::websocket::detail::utf8_checker utf8;
  return utf8.write(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()) &&
         utf8.finish();
}

// What the session relies on for every event.
void check_event(const frame_event& e, std::size_t available) {
  check(e.used <= available);
  switch (e.type) {
  case kind::incomplete:
  case kind::violation:
    check(e.used == 0);
    check(e.type == kind::incomplete || e.code == 1002 || e.code == 1003 ||
          e.code == 1007 || e.code == 1009);
    break;
  case kind::text:
    check(e.payload.size() <= limit);
    check(is_utf8(e.payload));
    check(e.used > 0);
    break;
  case kind::ping:
  case kind::pong:
    check(e.payload.size() <= hubnode::ws::max_control_payload);
    check(e.used > 0);
    break;
  case kind::close:
    check(e.code >= 1000 && e.code < 5000);
    check(e.used > 0);
    break;
  case kind::fragment:
    check(e.used > 0);
    break;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  std::size_t split = data[0] % size;
  std::string pending;
  hubnode::ws::frame_decoder decoder(limit);
  // Two reads: the bytes of an incomplete frame wait for the next one.
  for (auto [from, to] :
       {std::pair{std::size_t{1}, split + 1}, std::pair{split + 1, size}}) {
    pending.append(reinterpret_cast<const char*>(data) + std::min(from, size),
                   reinterpret_cast<const char*>(data) + std::min(to, size));
    std::size_t at = 0;
    for (;;) {
      auto e = decoder.decode(pending.data() + at, pending.size() - at);
      check_event(e, pending.size() - at);
      if (e.type == kind::violation || e.type == kind::close)
        return 0;
      if (e.type == kind::incomplete)
        break;
      at += e.used;
    }
    pending.erase(0, at);
  }
  return 0;
}
