// The one rule for user ids (SPEC section 2): a decimal number that fits in
// 64 unsigned bits, canonicalised ("007" is user 7).
#pragma once

#include "src/base/types.hpp"

#include <optional>
#include <string_view>

namespace hubnode {

// Digits only, at least one, value at most 2^64-1. No sign, no spaces.
std::optional<user_id> parse_user_id(std::string_view text);

} // namespace hubnode
