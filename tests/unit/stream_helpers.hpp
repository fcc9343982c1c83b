// What the tests of streams share: reads built with each entry's frame made
// from its offset, and the offsets a stand-in connection got.
#pragma once

#include "src/base/log.hpp"

#include "src/base/types.hpp"
#include "tests/unit/actor_fixture.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace hubnode::test {

using frame_maker = payload (*)(std::uint64_t offset);

// A read of a stream in `epoch` at `top` with the entries `kept`. Built one
// entry at a time: GCC 12 takes a nested braced list of these for a use of
// an uninitialized string (-Wmaybe-uninitialized).
inline stream_read read_of(std::string epoch, std::uint64_t top,
                           const std::vector<std::uint64_t>& kept, frame_maker frame) {
  stream_read result;
  result.top.epoch = std::move(epoch);
  result.top.offset = top;
  for (auto offset : kept)
    result.entries.push_back({offset, frame(offset)});
  return result;
}

// The offsets of the publications among what `log` received.
inline std::vector<std::int64_t> publication_offsets(const probe_log& log) {
  std::vector<std::int64_t> result;
  for (auto& frame : log.delivered)
    if (type_of(frame) == "publication")
      result.push_back(parse(frame).at("offset").as_int64());
  return result;
}

} // namespace hubnode::test
