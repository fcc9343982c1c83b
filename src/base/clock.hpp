// Wall-clock time as the protocol and Redis events carry it.
#pragma once

#include <chrono>
#include <cstdint>

namespace hubnode {

// Milliseconds since the Unix epoch (the `ts` of SPEC's frames and events).
inline std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace hubnode
