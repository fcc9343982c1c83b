// What tells one run of a node from another run with the same node id.
#pragma once

#include "src/base/log.hpp"

#include <cstdint>
#include <string>

namespace hubnode {

// The start time `start_ms` (Unix ms) in base 36: 8 characters until 2059.
// Part of every message id, so that a node restarted with the same
// cluster.node-id does not reuse ids (SPEC section 3, "Identity"); no node
// starts twice within one millisecond.
inline std::string incarnation(std::int64_t start_ms) {
  constexpr char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  auto n = static_cast<std::uint64_t>(start_ms);
  std::string reversed;
  do {
    reversed += digits[n % 36];
    n /= 36;
  } while (n != 0);
  return {reversed.rbegin(), reversed.rend()};
}

} // namespace hubnode
