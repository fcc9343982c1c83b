#include "src/base/log.hpp"

#include "src/redis/keys.hpp"

#include "src/base/user_id.hpp"

namespace hubnode {

namespace {

// SCAN's MATCH is a glob: a prefix with *, ?, [ or \ must not act as one.
std::string glob_escape(std::string_view text) {
  std::string result;
  for (auto c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
      result += '\\';
    result += c;
  }
  return result;
}

// The rest of `text` after `head`; nothing when it does not start with it.
std::optional<std::string_view> after(std::string_view text, std::string_view head) {
  if (text.substr(0, head.size()) != head)
    return std::nullopt;
  return text.substr(head.size());
}

} // namespace

redis_keys::redis_keys(std::string prefix_text)
    : prefix(std::move(prefix_text)), online(prefix + "online"), nodes(prefix + "nodes"),
      channel(prefix + "presence"), user_pattern(glob_escape(prefix) + "presence:*") {}

std::string redis_keys::user(user_id user) const {
  return prefix + "presence:" + std::to_string(user);
}

std::string redis_keys::node(std::string_view node_id) const {
  return prefix + "node:" + std::string{node_id};
}

std::string redis_keys::delivery(user_id user) const {
  return prefix + "user:" + std::to_string(user);
}

std::string redis_keys::publications(std::string_view channel) const {
  return prefix + "chan:" + std::string{channel};
}

std::string redis_keys::user_stream(user_id user) const {
  return prefix + "{u:" + std::to_string(user) + "}";
}

std::string redis_keys::channel_stream(std::string_view channel) const {
  return prefix + "{c:" + std::string{channel} + "}";
}

std::optional<user_id> redis_keys::user_of(std::string_view key) const {
  auto rest = after(key, prefix + "presence:");
  if (!rest)
    return std::nullopt;
  return parse_user_id(*rest);
}

std::optional<std::string_view>
redis_keys::delivery_user(std::string_view channel) const {
  return after(channel, prefix + "user:");
}

std::optional<std::string_view> redis_keys::channel_of(std::string_view channel) const {
  return after(channel, prefix + "chan:");
}

} // namespace hubnode
