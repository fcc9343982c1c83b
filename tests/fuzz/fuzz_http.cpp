// libFuzzer target: the HTTP request side of hubnode. Bytes go through
// Beast's request parser with the limits http_session sets (header 16 KiB,
// body server.max-message-size), once in one piece and once in small pieces
// through a flat_buffer as async_read would; both must agree. A parsed
// request's target then goes through the router's pure helpers (path_of,
// query_param, url_decode) and the userId rule, as check_upgrade does.
// Built and run by tests/fuzz/run.sh.
// Boost before 1.86 has an over-strict BOOST_ASSERT(n >= 5) in
// basic_parser::parse_chunk_header that fires when a final chunk "0\r\n" and
// its trailers arrive in separate reads (boostorg/beast#2861); the parser is
// right without it. Release builds of hubnode have NDEBUG, so the assertion
// does not exist there either (regression seed
// corpus/fuzz_http/regression_beast_final_chunk_split).
#include <boost/version.hpp>
#if BOOST_VERSION < 108600
#define BOOST_DISABLE_ASSERTS
#endif

#include "src/base/user_id.hpp"
#include "src/wire/http_target.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

// As in src/net/http_session.cpp and the default of server.max-message-size.
constexpr std::uint32_t header_limit = 16 * 1024;
constexpr std::uint64_t body_limit = 65536;

using request = http::request<http::string_body>;

void check(bool ok) {
  if (!ok)
    std::abort();
}

void set_limits(http::request_parser<http::string_body>& parser) {
  parser.header_limit(header_limit);
  parser.body_limit(body_limit);
  parser.eager(true);
}

// The input then end of stream, all in one buffer.
std::optional<request> parse_whole(std::string_view text) {
  http::request_parser<http::string_body> parser;
  set_limits(parser);
  beast::error_code ec;
  std::size_t used = 0;
  while (!parser.is_done() && used < text.size()) {
    auto n = parser.put(net::buffer(text.data() + used, text.size() - used), ec);
    used += n;
    if (ec == http::error::need_more) {
      ec = {};
      break; // the whole input is already in the buffer
    }
    if (ec)
      return std::nullopt;
    if (n == 0)
      break;
  }
  if (!parser.is_done() && parser.got_some())
    parser.put_eof(ec);
  if (ec || !parser.is_done())
    return std::nullopt;
  return parser.release();
}

// The same input arriving `chunk` bytes at a time, as http::read drives it.
std::optional<request> parse_pieces(std::string_view text, std::size_t chunk) {
  http::request_parser<http::string_body> parser;
  set_limits(parser);
  beast::flat_buffer buffer;
  beast::error_code ec;
  std::size_t fed = 0;
  while (!parser.is_done()) {
    if (fed == text.size()) {
      if (parser.got_some())
        parser.put_eof(ec);
      break;
    }
    auto n = std::min(chunk, text.size() - fed);
    auto space = buffer.prepare(n);
    net::buffer_copy(space, net::buffer(text.data() + fed, n));
    buffer.commit(n);
    fed += n;
    while (!parser.is_done() && buffer.size() > 0) {
      auto used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec)
        return std::nullopt;
      if (used == 0)
        break;
    }
  }
  if (ec || !parser.is_done())
    return std::nullopt;
  return parser.release();
}

void route(std::string_view target) {
  auto path = hubnode::path_of(target);
  check(path.size() <= target.size() && target.substr(0, path.size()) == path);
  check(path.find('?') == std::string_view::npos);
  for (std::string_view name : {"userId", "token", ""}) {
    auto value = hubnode::query_param(target, name);
    if (!value)
      continue;
    check(path.size() < target.size()); // only found behind a '?'
    check(value->size() < target.size());
    if (auto user = hubnode::parse_user_id(*value))
      check(hubnode::parse_user_id(std::to_string(*user)) == user);
  }
  auto decoded = hubnode::url_decode(target);
  check(decoded.size() <= target.size());
  // Decoding never adds bytes, and text without '%' or '+' is unchanged.
  if (target.find_first_of("%+") == std::string_view::npos)
    check(decoded == target);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  // The helpers take any string, not only targets Beast accepts.
  route(text);

  auto whole = parse_whole(text);
  auto pieces = parse_pieces(text, 1 + size % 61);
  check(whole.has_value() == pieces.has_value());
  if (!whole)
    return 0;
  check(whole->method_string() == pieces->method_string());
  check(whole->target() == pieces->target());
  check(whole->body() == pieces->body());
  check(whole->body().size() <= body_limit);

  auto target = whole->target();
  route({target.data(), target.size()});
  // The dispatch of http_session::handle.
  auto path = hubnode::path_of({target.data(), target.size()});
  if (beast::websocket::is_upgrade(*whole) && path == "/ws")
    hubnode::parse_user_id(hubnode::query_param({target.data(), target.size()}, "userId")
                               .value_or(std::string{}));
  (void)whole->keep_alive();
  return 0;
}
