// Finds one member of a JSON object as the text the sender wrote, so that a
// value can be passed on verbatim (SPEC section 3, "Fidelity") without being
// parsed and written again.
#pragma once

#include "src/base/log.hpp"

#include <optional>
#include <string_view>

namespace hubnode {

// The text of the value of the top-level member `key` (ASCII) of `object`,
// without the whitespace around it; nothing when there is no such member.
// `object` must be JSON that a parser has accepted: this only skips through
// it. Names compare as a parser compares them, after unescaping
// ("d\u0061ta" is "data"), and of repeated names the last counts, as it
// does in a parsed object.
std::optional<std::string_view> member_text(std::string_view object,
                                            std::string_view key);

} // namespace hubnode
