// Channel names and who may use them (SPEC section 8).
#pragma once

#include "src/base/log.hpp"

#include "src/base/types.hpp"

#include <string_view>

namespace hubnode {

// 1 to 128 characters of A-Z a-z 0-9 _ - . :
bool valid_channel_name(std::string_view name);

// Whether `grants` allow `channel`: an exact name, or a prefix ending in `*`
// ("*" allows all). No grants at all (userid mode) allow every channel.
bool channel_allowed(const channel_grants& grants, std::string_view channel);

} // namespace hubnode
