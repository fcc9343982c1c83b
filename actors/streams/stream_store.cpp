#include "src/base/log.hpp"

#include "actors/streams/stream_store.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace hubnode {

template <class Key>
stream_store<Key>::stream_store(stream_settings cfg) : cfg_(std::move(cfg)) {}

template <class Key>
bool stream_store<Key>::expired(const stream& s, time_point now) const {
  return s.readers == 0 && now - s.last_change > cfg_.ttl;
}

// A stream that expired starts again empty, at offset 0, in a new epoch.
template <class Key>
typename stream_store<Key>::stream& stream_store<Key>::live(const Key& key,
                                                            time_point now) {
  auto [i, added] = streams_.try_emplace(key);
  auto& s = i->second;
  if (!added && !expired(s, now))
    return s;
  auto readers = added ? 0 : s.readers;
  s = stream{};
  s.generation = ++last_generation_;
  s.last_change = now;
  s.readers = readers;
  return s;
}

template <class Key>
std::string stream_store<Key>::epoch_of(const stream& s) const {
  return fmt::format("{}-{}", cfg_.epoch_prefix, s.generation);
}

template <class Key>
stream_position stream_store<Key>::open(const Key& key, time_point now) {
  auto& s = live(key, now);
  ++s.readers;
  return {epoch_of(s), s.last_offset};
}

template <class Key>
void stream_store<Key>::close(const Key& key, time_point now) {
  auto i = streams_.find(key);
  if (i == streams_.end() || i->second.readers == 0)
    return;
  --i->second.readers;
  i->second.last_change = now;
}

template <class Key>
void stream_store<Key>::keep(stream& s, const payload& frame) {
  if (cfg_.size == 0)
    return;
  if (s.kept.size() < cfg_.size)
    return s.kept.push_back(frame);
  s.kept[s.head] = frame;
  s.head = static_cast<std::uint32_t>((s.head + 1) % s.kept.size());
}

template <class Key>
std::vector<payload> stream_store<Key>::newest(const stream& s, std::size_t count) const {
  std::vector<payload> result;
  result.reserve(count);
  auto n = s.kept.size();
  for (auto k = n - count; k < n; ++k)
    result.push_back(s.kept[(s.head + k) % n]);
  return result;
}

template <class Key>
std::optional<std::vector<payload>>
stream_store<Key>::since(const Key& key, const stream_position& from, time_point now) {
  auto i = streams_.find(key);
  if (i == streams_.end() || expired(i->second, now))
    return std::nullopt;
  auto& s = i->second;
  if (from.epoch != epoch_of(s) || from.offset > s.last_offset)
    return std::nullopt;
  auto missed = s.last_offset - from.offset;
  if (missed > s.kept.size() || missed > cfg_.recover_limit)
    return std::nullopt;
  return newest(s, missed);
}

template <class Key>
stream_slice stream_store<Key>::kept(const Key& key, std::optional<std::uint64_t> after,
                                     std::size_t limit, time_point now) {
  auto& s = live(key, now);
  stream_slice result;
  result.top = {epoch_of(s), s.last_offset};
  std::uint64_t oldest = s.last_offset - s.kept.size(); // offset before the first kept
  std::uint64_t from = after ? std::max(*after, oldest) : oldest;
  if (from >= s.last_offset)
    return result;
  auto count = static_cast<std::size_t>(s.last_offset - from);
  auto take = std::min<std::size_t>(count, limit);
  auto all = newest(s, count);
  if (after)
    all.resize(take); // the oldest `take` after `after`
  else
    all.erase(all.begin(), all.end() - static_cast<std::ptrdiff_t>(take));
  result.first_offset = after ? from + 1 : s.last_offset - take + 1;
  result.entries = std::move(all);
  return result;
}

template <class Key>
void stream_store<Key>::expire(time_point now) {
  for (auto i = streams_.begin(); i != streams_.end();)
    i = expired(i->second, now) ? streams_.erase(i) : std::next(i);
}

template class stream_store<user_id>;
template class stream_store<std::string>;

} // namespace hubnode
