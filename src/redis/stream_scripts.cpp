#include "src/base/log.hpp"

#include "src/redis/stream_scripts.hpp"

#include "src/redis/eval.hpp"
#include "src/redis/keys.hpp"

#include <charconv>

namespace hubnode::stream_scripts {

namespace {

constexpr std::string_view zero_offset = "\"offset\":0,";

std::optional<std::uint64_t> parse_offset(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end == text.data())
    return std::nullopt;
  return value;
}

bool is_integer(const redis_reply& r) {
  return r.type == redis_reply::kind::integer;
}
bool is_string(const redis_reply& r) {
  return r.type == redis_reply::kind::string;
}

} // namespace

// A stream without its HASH lost its history (flushed, expired, deleted):
// it starts again, empty, in the epoch proposed. HINCRBY on a missing HASH
// would otherwise start the offsets again under an old epoch.
const char* const append_lua = R"lua(
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[2], 'top', 1)
local frame = ARGV[2] .. offset .. ARGV[3]
if ARGV[4] ~= '0' then
  redis.call('RPUSH', KEYS[1], frame)
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[4]), -1)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local receivers = redis.call('PUBLISH', ARGV[6], epoch .. '\n' .. offset .. '\n' .. frame)
return {offset, epoch, receivers}
)lua";

// The LIST holds the newest entries, the last one at offset `top`, so an
// offset's index is arithmetic. Offsets past 2^53 lose digits in Lua's
// numbers; a stream never gets there, and a client's `after` that large is
// past `top` either way.
const char* const read_lua = R"lua(
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'top', 0)
end
local top = tonumber(redis.call('HGET', KEYS[2], 'top'))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local result = {epoch, top}
local count = tonumber(ARGV[4])
local first = top - redis.call('LLEN', KEYS[1]) + 1
local from = first
if ARGV[3] == '' then
  from = math.max(first, top - count + 1)
else
  from = math.max(first, tonumber(ARGV[3]) + 1)
end
local last = math.min(top, from + count - 1)
if count == 0 or from > last then return result end
local frames = redis.call('LRANGE', KEYS[1], from - first, last - first)
for i, frame in ipairs(frames) do
  table.insert(result, from + i - 1)
  table.insert(result, frame)
end
return result
)lua";

std::optional<published_entry> parse_published(std::string_view message) {
  auto first = message.find('\n');
  if (first == std::string_view::npos || first == 0)
    return std::nullopt;
  auto second = message.find('\n', first + 1);
  if (second == std::string_view::npos || second + 1 == message.size())
    return std::nullopt;
  auto offset = parse_offset(message.substr(first + 1, second - first - 1));
  if (!offset)
    return std::nullopt;
  return published_entry{
      message.substr(0, first),
      {*offset, make_payload(std::string{message.substr(second + 1)})}};
}

// The script writes the offset between the frame's two halves.
redis_command append(const std::string& stream, std::string_view frame,
                     const std::string& new_epoch, std::size_t size,
                     std::chrono::milliseconds ttl, const std::string& pubsub) {
  auto at = frame.find(zero_offset);
  auto head = frame.substr(0, at + zero_offset.size() - 2);
  auto tail = frame.substr(at + zero_offset.size() - 1);
  return eval_script(append_lua,
                     {redis_keys::log_of(stream), redis_keys::meta_of(stream)},
                     {new_epoch, std::string{head}, std::string{tail},
                      std::to_string(size), std::to_string(ttl.count()), pubsub});
}

std::optional<appended> parse_appended(const redis_reply& reply) {
  auto& e = reply.elements;
  if (reply.type != redis_reply::kind::array || e.size() != 3 || !is_integer(e[0]) ||
      !is_string(e[1]) || !is_integer(e[2]))
    return std::nullopt;
  return appended{static_cast<std::uint64_t>(e[0].integer), e[1].str, e[2].integer};
}

redis_command read(const std::string& stream, const std::string& new_epoch,
                   std::chrono::milliseconds ttl, std::optional<std::uint64_t> after,
                   std::size_t count) {
  return eval_script(read_lua, {redis_keys::log_of(stream), redis_keys::meta_of(stream)},
                     {new_epoch, std::to_string(ttl.count()),
                      after ? std::to_string(*after) : std::string{},
                      std::to_string(count)});
}

// {epoch, top, offset, frame, offset, frame, ...}
std::optional<stream_read> parse_read(const redis_reply& reply) {
  auto& e = reply.elements;
  if (reply.type != redis_reply::kind::array || e.size() < 2 || e.size() % 2 != 0 ||
      !is_string(e[0]) || !is_integer(e[1]))
    return std::nullopt;
  stream_read result;
  result.top = {e[0].str, static_cast<std::uint64_t>(e[1].integer)};
  for (std::size_t i = 2; i < e.size(); i += 2) {
    if (!is_integer(e[i]) || !is_string(e[i + 1]))
      return std::nullopt;
    result.entries.push_back(
        {static_cast<std::uint64_t>(e[i].integer), make_payload(e[i + 1].str)});
  }
  return result;
}

} // namespace hubnode::stream_scripts
