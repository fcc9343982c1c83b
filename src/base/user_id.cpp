#include "src/base/log.hpp"

#include "src/base/user_id.hpp"

#include <limits>

namespace hubnode {

std::optional<user_id> parse_user_id(std::string_view text) {
  if (text.empty())
    return std::nullopt;
  constexpr auto max = std::numeric_limits<user_id>::max();
  user_id value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    auto digit = static_cast<user_id>(c - '0');
    // Checked before multiplying so the comparison itself cannot wrap.
    if (value > (max - digit) / 10)
      return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

} // namespace hubnode
