// HS256 JSON Web Tokens (SPEC section 2, auth.mode = "jwt"): the identity of
// a connection. Only HS256 is accepted; `none` and every other algorithm are
// refused.
#pragma once

#include "src/base/log.hpp"

#include "src/base/types.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace hubnode {

struct jwt_identity {
  user_id user = 0;
  // Expiry in unix seconds when the token has `exp`.
  std::optional<std::int64_t> expires;
  // The claim `channels` (SPEC section 8): its strings; none without it.
  channel_grants channels;
};

// Verifies `token` against `secret` at unix time `now`: strict base64url,
// header alg "HS256", HMAC-SHA256 compared in constant time, `sub` a valid
// user id (same rule as userId), `exp` in the future when present. Never
// throws; nothing on any failure.
std::optional<jwt_identity> verify_jwt(std::string_view token, std::string_view secret,
                                       std::int64_t now);

} // namespace hubnode
