#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "presence"

#include "actors/presence/queries.hpp"

#include "actors/presence/grace.hpp"
#include "actors/presence/redis_io.hpp"

#include <charconv>
#include <string>
#include <utility>

namespace hubnode::presence {

namespace {

user_list local_subset(presence_ptr self, const user_list& users) {
  user_list online;
  for (auto user : users)
    if (local_entry(self, user) != nullptr)
      online.push_back(user);
  return online;
}

std::uint64_t local_count(presence_ptr self, user_id user) {
  auto entry = local_entry(self, user);
  return entry ? entry->connections : 0;
}

// The connections of every node in a P`presence:ID` HGETALL reply, this
// node's taken from the local truth (fresher than a write still on its way).
std::uint64_t cluster_count(presence_ptr self, user_id user, const redis_reply& fields) {
  auto total = local_count(self, user);
  auto& elements = fields.elements;
  for (std::size_t i = 0; i + 1 < elements.size(); i += 2) {
    if (elements[i].str == self->state.cfg.node_id)
      continue;
    auto& text = elements[i + 1].str;
    std::uint64_t count = 0;
    std::from_chars(text.data(), text.data() + text.size(), count);
    total += count;
  }
  return total;
}

} // namespace

// A user with an entry here is online (a connection or a grace here) without
// asking Redis; others are in P`online` or not (false when Redis fails).
caf::result<bool> online(presence_ptr self, user_id user) {
  if (local_entry(self, user) != nullptr || !self->state.mirror)
    return local_entry(self, user) != nullptr;
  auto rp = self->make_response_promise<bool>();
  exchange(
      self, {{"SISMEMBER", mirror(self).keys.online, std::to_string(user)}}, "online",
      [rp](const redis_replies& replies) mutable {
        rp.deliver(integer_at(replies, 0) == 1);
      },
      [rp]() mutable { rp.deliver(false); });
  return rp;
}

// One SMISMEMBER (Redis 6.2+) for the whole list, in the list's order.
caf::result<user_list> query(presence_ptr self, const user_list& users) {
  if (!self->state.mirror || users.empty())
    return local_subset(self, users);
  redis_command cmd{"SMISMEMBER", mirror(self).keys.online};
  for (auto user : users)
    cmd.push_back(std::to_string(user));
  auto rp = self->make_response_promise<user_list>();
  exchange(
      self, {std::move(cmd)}, "query",
      [self, rp, users](const redis_replies& replies) mutable {
        if (replies.size() != 1 || replies[0].elements.size() != users.size()) {
          CAF_LOG_WARNING("unexpected SMISMEMBER reply");
          rp.deliver(local_subset(self, users));
          return;
        }
        user_list online;
        for (std::size_t i = 0; i < users.size(); ++i) {
          auto& flag = replies[0].elements[i];
          auto member = flag.type == redis_reply::kind::integer && flag.integer == 1;
          if (member || local_entry(self, users[i]) != nullptr)
            online.push_back(users[i]);
        }
        rp.deliver(std::move(online));
      },
      [self, rp, users]() mutable { rp.deliver(local_subset(self, users)); });
  return rp;
}

caf::result<bool, std::uint64_t> count(presence_ptr self, user_id user) {
  if (!self->state.mirror)
    return {local_entry(self, user) != nullptr, local_count(self, user)};
  auto& keys = mirror(self).keys;
  redis_pipeline pipeline{{"SISMEMBER", keys.online, std::to_string(user)},
                          {"HGETALL", keys.user(user)}};
  auto rp = self->make_response_promise<bool, std::uint64_t>();
  exchange(
      self, std::move(pipeline), "count",
      [self, rp, user](const redis_replies& replies) mutable {
        auto local = local_entry(self, user) != nullptr;
        if (replies.size() != 2 || replies[1].type != redis_reply::kind::array) {
          rp.deliver(local, local_count(self, user));
          return;
        }
        auto member = integer_at(replies, 0) == 1;
        rp.deliver(local || member, cluster_count(self, user, replies[1]));
      },
      [self, rp, user]() mutable {
        rp.deliver(local_entry(self, user) != nullptr, local_count(self, user));
      });
  return rp;
}

} // namespace hubnode::presence
