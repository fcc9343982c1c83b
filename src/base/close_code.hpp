// WebSocket close codes (RFC 6455 section 7.4.1): SPEC section 3's own and
// the ones the frame decoder answers protocol violations with.
#pragma once

#include <cstdint>

namespace hubnode::close_code {

constexpr std::uint16_t normal = 1000;
constexpr std::uint16_t going_away = 1001;
constexpr std::uint16_t protocol_error = 1002;
constexpr std::uint16_t unsupported = 1003;
constexpr std::uint16_t invalid_payload = 1007;
constexpr std::uint16_t policy = 1008;
constexpr std::uint16_t too_big = 1009;

} // namespace hubnode::close_code
