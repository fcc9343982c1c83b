#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "presence"

// Redis Cluster: a script may touch only keys of one hash slot. Every script
// here touches P`online` and one P`presence:ID` (reap also P`node:X`), so a
// move to Redis Cluster needs only a hash tag in the prefix ("{hubnode}:"),
// which puts all presence keys in one slot: one shard carries presence, as now.
// The channel is not a key (PUBLISH reaches the whole cluster), and SCAN then
// has to run on the shard that owns that slot.

#include "src/redis/presence_scripts.hpp"

#include "src/redis/eval.hpp"

#include <boost/json.hpp>

namespace hubnode {

std::string presence_event(user_id user, bool online, std::string_view node,
                           std::int64_t ts_ms) {
  boost::json::object event;
  event["userId"] = std::to_string(user);
  event["online"] = online;
  event["node"] = node;
  event["ts"] = ts_ms;
  return boost::json::serialize(event);
}

namespace presence_scripts {

// KEYS: P`presence:ID`, P`online`. ARGV: node, count, user id, channel, event.
const std::string_view connect_lua = R"lua(
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('SADD', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
)lua";

// KEYS: P`presence:ID`, P`online`. ARGV: node, user id, channel, event.
// A count above 0 means the node has connections again: not this grace's to
// end. A missing field (Redis lost it) still lets an empty hash go offline.
const std::string_view expire_lua = R"lua(
local count = redis.call('HGET', KEYS[1], ARGV[1])
if count and count ~= '0' then return 0 end
if count then redis.call('HDEL', KEYS[1], ARGV[1]) end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SREM', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
)lua";

// KEYS: P`presence:ID`, P`online`, optionally P`node:NODE`. ARGV: node, user
// id, channel, event. The heartbeat check guards a node that came back
// (restarted with the same id) while a survivor was still reaping it.
const std::string_view reap_lua = R"lua(
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SREM', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
)lua";

redis_command connect(const redis_keys& keys, user_id user, std::string_view node,
                      std::uint64_t count, std::string_view online_event) {
  return eval_script(connect_lua, {keys.user(user), keys.online},
                     {std::string{node}, std::to_string(count), std::to_string(user),
                      keys.channel, std::string{online_event}});
}

redis_command expire(const redis_keys& keys, user_id user, std::string_view node,
                     std::string_view offline_event) {
  return eval_script(expire_lua, {keys.user(user), keys.online},
                     {std::string{node}, std::to_string(user), keys.channel,
                      std::string{offline_event}});
}

redis_command reap(const redis_keys& keys, user_id user, std::string_view node,
                   std::string_view offline_event, bool only_if_dead) {
  std::initializer_list<std::string> args{std::string{node}, std::to_string(user),
                                          keys.channel, std::string{offline_event}};
  if (only_if_dead)
    return eval_script(reap_lua, {keys.user(user), keys.online, keys.node(node)}, args);
  return eval_script(reap_lua, {keys.user(user), keys.online}, args);
}

} // namespace presence_scripts

} // namespace hubnode
