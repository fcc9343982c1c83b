#include "bench/url.hpp"

#include <boost/asio/ip/address.hpp>
#include <charconv>

namespace bench {

namespace {

struct host_port {
  std::string host;
  std::uint16_t port;
  std::string rest;
};

// Splits HOST:PORT[REST] after the scheme; HOST must be a loopback address.
std::optional<host_port> parse_authority(std::string_view text) {
  std::string host;
  if (!text.empty() && text.front() == '[') {
    const auto end = text.find(']');
    if (end == std::string_view::npos)
      return std::nullopt;
    host = std::string(text.substr(1, end - 1));
    text.remove_prefix(end + 1);
  } else {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos)
      return std::nullopt;
    host = std::string(text.substr(0, colon));
    text.remove_prefix(colon);
  }
  if (text.empty() || text.front() != ':')
    return std::nullopt;
  text.remove_prefix(1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc{} || port == 0 || port > 65535)
    return std::nullopt;
  if (host == "localhost")
    host = "127.0.0.1";
  boost::system::error_code bad;
  const auto address = boost::asio::ip::make_address(host, bad);
  if (bad || !address.is_loopback())
    return std::nullopt;
  return host_port{host, static_cast<std::uint16_t>(port),
                   std::string(end, text.data() + text.size())};
}

std::optional<host_port> after_scheme(const std::string& text, std::string_view scheme) {
  if (text.compare(0, scheme.size(), scheme) != 0)
    return std::nullopt;
  return parse_authority(std::string_view(text).substr(scheme.size()));
}

} // namespace

std::optional<ws_url> parse_ws_url(const std::string& text) {
  auto parts = after_scheme(text, "ws://");
  if (!parts || (!parts->rest.empty() && parts->rest.front() != '/'))
    return std::nullopt;
  ws_url url{parts->host, parts->port, parts->rest.empty() ? "/ws" : parts->rest};
  // The client adds ?userId=...; a query of its own would be ambiguous.
  if (url.path.find('?') != std::string::npos)
    return std::nullopt;
  return url;
}

std::optional<std::pair<std::string, std::uint16_t>>
parse_redis_url(const std::string& text) {
  auto parts = after_scheme(text, "redis://");
  if (!parts || !(parts->rest.empty() || parts->rest == "/"))
    return std::nullopt;
  return std::make_pair(parts->host, parts->port);
}

} // namespace bench
