#include "src/base/log.hpp"

#include "actors/streams/user_streams.hpp"

#include <fmt/format.h>

namespace hubnode {

user_streams::user_streams(user_streams_settings cfg) : cfg_(std::move(cfg)) {}

bool user_streams::expired(const stream& s, time_point now) const {
  return s.connections == 0 && now - s.last_change > cfg_.ttl;
}

// A stream that expired starts again empty, at offset 0, in a new epoch.
user_streams::stream& user_streams::live(user_id user, time_point now) {
  auto [i, added] = streams_.try_emplace(user);
  auto& s = i->second;
  if (!added && !expired(s, now))
    return s;
  auto connections = added ? 0 : s.connections;
  s = stream{};
  s.generation = ++last_generation_;
  s.last_change = now;
  s.connections = connections;
  return s;
}

std::string user_streams::epoch_of(const stream& s) const {
  return fmt::format("{}-{}", cfg_.epoch_prefix, s.generation);
}

stream_position user_streams::open(user_id user, time_point now) {
  auto& s = live(user, now);
  ++s.connections;
  return {epoch_of(s), s.last_offset};
}

void user_streams::close(user_id user, time_point now) {
  auto i = streams_.find(user);
  if (i == streams_.end() || i->second.connections == 0)
    return;
  --i->second.connections;
  i->second.last_change = now;
}

void user_streams::keep(stream& s, const payload& frame) {
  if (cfg_.size == 0)
    return;
  if (s.kept.size() < cfg_.size)
    return s.kept.push_back(frame);
  s.kept[s.head] = frame;
  s.head = static_cast<std::uint32_t>((s.head + 1) % s.kept.size());
}

std::optional<std::vector<payload>>
user_streams::since(user_id user, const stream_position& from, time_point now) {
  auto i = streams_.find(user);
  if (i == streams_.end() || expired(i->second, now))
    return std::nullopt;
  auto& s = i->second;
  if (from.epoch != epoch_of(s) || from.offset > s.last_offset)
    return std::nullopt;
  auto missed = s.last_offset - from.offset;
  if (missed > s.kept.size() || missed > cfg_.recover_limit)
    return std::nullopt;
  std::vector<payload> result;
  result.reserve(missed);
  auto n = s.kept.size();
  for (auto k = n - missed; k < n; ++k)
    result.push_back(s.kept[(s.head + k) % n]);
  return result;
}

void user_streams::expire(time_point now) {
  for (auto i = streams_.begin(); i != streams_.end();)
    i = expired(i->second, now) ? streams_.erase(i) : std::next(i);
}

} // namespace hubnode
