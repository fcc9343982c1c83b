#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "presence"

#include "actors/presence/redis_io.hpp"

#include "src/base/clock.hpp"
#include "src/redis/presence_scripts.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace hubnode::presence {

namespace {

// A script that fails in Redis (an error reply) is a bug to see in the log.
void log_error_replies(const char* what, const redis_replies& replies) {
  for (auto& reply : replies)
    if (reply.is_error()) {
      CAF_LOG_WARNING("Redis error reply" << CAF_ARG(what)
                                          << CAF_ARG2("error", reply.str));
      return;
    }
}

bool published(const redis_replies& replies, std::size_t i) {
  return integer_at(replies, i) == 1;
}

// SCAN answers [next cursor, [keys...]]; false when it does not.
bool parse_scan(const redis_replies& replies, std::string& cursor,
                std::vector<std::string>& keys) {
  if (replies.size() != 1 || replies[0].type != redis_reply::kind::array ||
      replies[0].elements.size() != 2)
    return false;
  auto& next = replies[0].elements[0];
  auto& found = replies[0].elements[1];
  if (next.type != redis_reply::kind::string || found.type != redis_reply::kind::array)
    return false;
  cursor = next.str;
  for (auto& key : found.elements)
    keys.push_back(key.str);
  return true;
}

} // namespace

void exchange(presence_ptr self, redis_pipeline pipeline, const char* what,
              replies_handler on_replies, failure_handler on_failure) {
  mirror(self).redis.exchange(
      self, std::move(pipeline),
      [what, on_replies](const redis_replies& replies) {
        log_error_replies(what, replies);
        on_replies(replies);
      },
      [what, on_failure](const caf::error& err) {
        CAF_LOG_WARNING("Redis request failed" << CAF_ARG(what) << CAF_ARG(err));
        if (on_failure)
          on_failure();
      });
}

std::optional<std::int64_t> integer_at(const redis_replies& replies, std::size_t i) {
  if (i >= replies.size() || replies[i].type != redis_reply::kind::integer)
    return std::nullopt;
  return replies[i].integer;
}

std::size_t count_published(const redis_replies& replies, std::size_t scripts) {
  std::size_t result = 0;
  for (std::size_t i = 0; i < std::min(scripts, replies.size()); ++i)
    result += published(replies, i) ? 1 : 0;
  return result;
}

replies_handler count_transitions(presence_ptr self, counter stats::*which) {
  return [self, which](const redis_replies& replies) {
    stats::bump(self->state.st->*which, count_published(replies));
  };
}

std::string event_of(presence_ptr self, user_id user, bool online) {
  return presence_event(user, online, self->state.cfg.node_id, now_ms());
}

void scan_users(presence_ptr self, std::string cursor, batch_handler on_batch,
                done_handler on_done) {
  auto& keys = mirror(self).keys;
  redis_pipeline step{{"SCAN", std::move(cursor), "MATCH", keys.user_pattern, "COUNT",
                       std::to_string(batch_size)}};
  exchange(
      self, std::move(step), "scan",
      [self, on_batch, on_done](const redis_replies& replies) {
        std::string next;
        std::vector<std::string> found;
        if (!parse_scan(replies, next, found)) {
          CAF_LOG_WARNING("unexpected SCAN reply");
          on_done(false);
          return;
        }
        user_list users;
        for (auto& key : found)
          if (auto user = mirror(self).keys.user_of(key))
            users.push_back(*user);
        if (!users.empty())
          on_batch(users);
        if (next == "0")
          on_done(true);
        else
          scan_users(self, std::move(next), on_batch, on_done);
      },
      [on_done] { on_done(false); });
}

} // namespace hubnode::presence
