#include "src/base/log.hpp"

#include "src/wire/channel_name.hpp"

#include <algorithm>

namespace hubnode {

namespace {

constexpr std::size_t max_channel_length = 128;

bool name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '.' || c == ':';
}

bool grant_matches(std::string_view grant, std::string_view channel) {
  if (!grant.empty() && grant.back() == '*')
    return channel.substr(0, grant.size() - 1) == grant.substr(0, grant.size() - 1);
  return grant == channel;
}

} // namespace

bool valid_channel_name(std::string_view name) {
  return !name.empty() && name.size() <= max_channel_length &&
         std::all_of(name.begin(), name.end(), name_char);
}

bool channel_allowed(const channel_grants& grants, std::string_view channel) {
  if (!grants)
    return true;
  return std::any_of(grants->begin(), grants->end(), [channel](const std::string& g) {
    return grant_matches(g, channel);
  });
}

} // namespace hubnode
