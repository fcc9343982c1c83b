// redis.url, parsed once at start.
#pragma once

#include "src/redis/types.hpp"

#include <optional>
#include <string_view>

namespace hubnode {

// redis://[:password@]host:port[/db]: host a name, an IPv4 address or an
// [IPv6] address; port 1-65535 required; db digits, 0 when absent. The
// password may be percent-encoded. Nothing when the URL is anything else
// (other schemes, a user name, a query string, missing port).
std::optional<redis_endpoint> parse_redis_url(std::string_view url);

} // namespace hubnode
