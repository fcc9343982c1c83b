// Pure helpers over an HTTP request target ("/path?query"): no actor system,
// no I/O, so the router's input handling can be unit-tested and fuzzed alone.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hubnode {

// The target without its query string.
std::string_view path_of(std::string_view target);

// The first value of query parameter `name` (names and values
// url-decoded), or nothing when absent; a name without '=' has "".
std::optional<std::string> query_param(std::string_view target, std::string_view name);

// application/x-www-form-urlencoded decoding ('+' is a space, %XX a byte); a
// broken escape is kept verbatim, so it fails the id check instead of being
// silently altered.
std::string url_decode(std::string_view text);

// RFC 3986 percent-decoding, as in the user info of a URL: %XX a byte, '+'
// itself. Nothing when an escape is broken.
std::optional<std::string> percent_decode(std::string_view text);

} // namespace hubnode
