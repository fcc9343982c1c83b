// ws:// URLs of the nodes under test. Only loopback hosts are accepted: the
// benchmark generates enough load to be a denial of service elsewhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace bench {

struct ws_url {
  std::string host; // a literal loopback address
  std::uint16_t port = 0;
  std::string path = "/ws";
};

// ws://HOST:PORT[/PATH] where HOST is 127.x.x.x, localhost, ::1 or [::1].
// Anything else (another scheme, a non-loopback host, no port) is nullopt.
std::optional<ws_url> parse_ws_url(const std::string& text);

// redis://HOST:PORT on a loopback host; nullopt otherwise.
std::optional<std::pair<std::string, std::uint16_t>>
parse_redis_url(const std::string& text);

} // namespace bench
