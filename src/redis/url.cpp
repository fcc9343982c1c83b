#include "src/base/log.hpp"

#include "src/redis/url.hpp"

#include "src/wire/http_target.hpp"

#include <algorithm>
#include <cctype>
#include <climits>

#include <boost/beast/core/string.hpp>

namespace hubnode {

namespace {

bool all_of(std::string_view text, bool (*pred)(char)) {
  return !text.empty() && std::all_of(text.begin(), text.end(), pred);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

bool is_ipv6_char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

// Digits only, at most `max`.
std::optional<long> parse_number(std::string_view digits, long max) {
  if (!all_of(digits, is_digit))
    return std::nullopt;
  long value = 0;
  for (char c : digits) {
    value = value * 10 + (c - '0');
    if (value > max)
      return std::nullopt;
  }
  return value;
}

// "host:port", "[v6]:port"; fills host and port.
bool parse_host_port(std::string_view text, redis_endpoint& endpoint) {
  std::string_view host;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      return false;
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (!all_of(host, is_ipv6_char) || host.find(':') == std::string_view::npos)
      return false;
  } else {
    auto colon = text.find(':');
    if (colon == std::string_view::npos)
      return false;
    host = text.substr(0, colon);
    rest = text.substr(colon);
    if (!all_of(host, is_host_char))
      return false;
  }
  if (rest.empty() || rest.front() != ':')
    return false;
  auto port = parse_number(rest.substr(1), 65535);
  if (!port || *port == 0)
    return false;
  endpoint.host = std::string{host};
  endpoint.port = static_cast<std::uint16_t>(*port);
  return true;
}

} // namespace

std::optional<redis_endpoint> parse_redis_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (url.size() < scheme.size() ||
      !boost::beast::iequals(url.substr(0, scheme.size()), scheme))
    return std::nullopt;
  auto rest = url.substr(scheme.size());
  redis_endpoint endpoint;
  // The password may hold '/' or ':' (or an unencoded '@'), so the user info
  // ends at the last '@'.
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    auto userinfo = rest.substr(0, at);
    if (userinfo.empty() || userinfo.front() != ':')
      return std::nullopt; // a user name: not in redis://[:password@]
    auto password = percent_decode(userinfo.substr(1));
    if (!password)
      return std::nullopt;
    endpoint.password = std::move(*password);
    rest = rest.substr(at + 1);
  }
  auto slash = rest.find('/');
  if (!parse_host_port(rest.substr(0, slash), endpoint))
    return std::nullopt;
  if (slash != std::string_view::npos && slash + 1 < rest.size()) {
    auto db = parse_number(rest.substr(slash + 1), INT_MAX);
    if (!db)
      return std::nullopt;
    endpoint.db = static_cast<int>(*db);
  }
  return endpoint;
}

} // namespace hubnode
