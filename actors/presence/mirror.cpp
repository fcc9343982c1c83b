#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "presence"

#include "actors/presence/mirror.hpp"

#include "actors/presence/grace.hpp"
#include "actors/presence/heartbeat.hpp"
#include "actors/presence/redis_io.hpp"
#include "src/redis/presence_scripts.hpp"

#include <chrono>
#include <utility>

namespace hubnode::presence {

// Every exchange goes through one redis_batch, so what this actor sends
// reaches Redis in the order sent: a reap sent before a user's connect can
// never undo it. That order is what makes the resync safe while users come
// and go.
//
// The mirror of the whole node. Redis says what this node knows while
// `synced`; every way out of it ends in a resync.
//
//      start, or a heartbeat that finds this node missing from P`nodes`
//                                 |
//                                 v
//   +----------------------> resyncing <-------------+
//   |                         |     |                |
//   |                complete |     | a part failed  | the next heartbeat
//   |                         v     v                |
//   |                     synced   failed -----------+
//   |                         |     |
//   |     redis_state(false)  +--+--+
//   |     (from any state)       v
//   +---- redis_state(true) --- down
//         [a heartbeat at once]
//
//   any state ---- withdraw ----> withdrawn: this node writes nothing more
//
// A resync asked for while one runs (resync_again) runs once more as soon
// as the running one ends. The states are flags of mirror_state: down is
// redis_down, resyncing resync_running, failed resync_failed.

namespace {

// The redis actor answers by itself, with an error when Redis is down or
// slow; this bound is for a redis actor that does not answer at all.
constexpr auto redis_timeout = std::chrono::seconds(2);
// Commands per combined pipeline: a bulk rewrite's and a little more.
constexpr std::size_t max_pipeline = 2 * batch_size;

void resync_part_failed(presence_ptr self) {
  mirror(self).resync_failed = true;
}

// Every local user's count, in pipelines of batch_size: back into a Redis
// that lost them (restarted without its data, or missed writes).
void assert_local_users(presence_ptr self) {
  auto& keys = mirror(self).keys;
  auto& node = self->state.cfg.node_id;
  redis_pipeline pipeline;
  auto flush = [self, &pipeline] {
    if (pipeline.empty())
      return;
    exchange(self, std::move(pipeline), "resync",
             count_transitions(self, &stats::presence_online),
             [self] { resync_part_failed(self); });
    pipeline.clear();
  };
  for (auto& [user, entry] : self->state.users) {
    pipeline.push_back(presence_scripts::connect(keys, user, node, entry.connections,
                                                 event_of(self, user, true)));
    if (pipeline.size() == batch_size)
      flush();
  }
  flush();
}

// This node's field of users it no longer has: left by a previous
// incarnation, or by writes that Redis got while this node thought them lost.
void drop_stale_fields(presence_ptr self, const user_list& users) {
  if (!mirroring(self))
    return;
  auto& keys = mirror(self).keys;
  redis_pipeline pipeline;
  for (auto user : users)
    if (local_entry(self, user) == nullptr)
      pipeline.push_back(presence_scripts::reap(keys, user, self->state.cfg.node_id,
                                                event_of(self, user, false), false));
  if (pipeline.empty())
    return;
  exchange(self, std::move(pipeline), "resync",
           count_transitions(self, &stats::presence_offline),
           [self] { resync_part_failed(self); });
}

void resync_done(presence_ptr self, bool complete) {
  auto& m = mirror(self);
  m.resync_running = false;
  if (!complete)
    m.resync_failed = true;
  CAF_LOG_INFO("presence resync" << CAF_ARG2("result", complete ? "done" : "failed"));
  if (m.resync_again) {
    m.resync_again = false;
    resync(self);
  }
}

} // namespace

// Registers first, so that a survivor's reaper sees this node alive before
// the resync clears what a previous incarnation left.
void start_mirror(presence_ptr self, redis_actor redis) {
  auto& st = self->state;
  st.mirror.emplace(
      mirror_state{redis_batch{std::move(redis), redis_timeout, max_pipeline},
                   redis_keys{st.cfg.key_prefix}});
  CAF_LOG_INFO("presence in Redis" << CAF_ARG2("node", st.cfg.node_id)
                                   << CAF_ARG2("prefix", st.cfg.key_prefix));
  on_heartbeat(self);
  resync(self);
}

// Also used on disconnect, so that a Redis that lost the user meanwhile gets
// it back with the next change.
void mirror_count(presence_ptr self, user_id user, std::uint64_t count) {
  if (!mirroring(self))
    return;
  auto& keys = mirror(self).keys;
  auto& node = self->state.cfg.node_id;
  exchange(
      self,
      {presence_scripts::connect(keys, user, node, count, event_of(self, user, true))},
      "connect", count_transitions(self, &stats::presence_online));
}

void mirror_expiry(presence_ptr self, user_id user) {
  if (!mirroring(self))
    return;
  auto& keys = mirror(self).keys;
  exchange(self,
           {presence_scripts::expire(keys, user, self->state.cfg.node_id,
                                     event_of(self, user, false))},
           "expire", count_transitions(self, &stats::presence_offline));
}

// At start (clears a previous incarnation of this node id) and whenever
// Redis may have lost or missed writes. Safe while users come and go: a
// user that connects after its key was looked at gets its connect script
// after the reap, in that order.
void resync(presence_ptr self) {
  if (!mirroring(self))
    return;
  auto& m = mirror(self);
  if (m.resync_running) {
    m.resync_again = true;
    return;
  }
  m.resync_running = true;
  m.resync_failed = false;
  assert_local_users(self);
  scan_users(
      self, "0", [self](const user_list& users) { drop_stale_fields(self, users); },
      [self](bool complete) { resync_done(self, complete); });
}

// Up after down: Redis may have restarted without its data, and has missed
// every write of the outage. Within a round trip or two it is right again.
void on_redis_state(presence_ptr self, bool up) {
  if (!self->state.mirror)
    return;
  auto& m = mirror(self);
  CAF_LOG_INFO("Redis" << CAF_ARG2("state", up ? "up" : "down"));
  if (!up) {
    m.redis_down = true;
    return;
  }
  if (!m.redis_down)
    return;
  m.redis_down = false;
  // Redis restored from disk has every heartbeat key expired; the other
  // nodes beat again once they see it back.
  m.redis_back = self->clock().now();
  beat(self);
  resync(self);
}

// This node's fields go (the users it alone had go offline, with their
// events), then the node itself. Always answers true: a node that cannot
// reach Redis still shuts down, and survivors reap it.
caf::result<bool> withdraw(presence_ptr self) {
  if (!mirroring(self))
    return true;
  auto& m = mirror(self);
  m.withdrawn = true;
  auto& node = self->state.cfg.node_id;
  redis_pipeline pipeline;
  for (auto& [user, entry] : self->state.users)
    pipeline.push_back(
        presence_scripts::reap(m.keys, user, node, event_of(self, user, false), false));
  pipeline.push_back({"DEL", m.keys.node(node)});
  pipeline.push_back({"SREM", m.keys.nodes, node});
  auto rp = self->make_response_promise<bool>();
  auto scripts = self->state.users.size();
  exchange(
      self, std::move(pipeline), "withdraw",
      [self, rp, scripts](const redis_replies& replies) mutable {
        CAF_LOG_INFO("presence withdrawn from Redis");
        stats::bump(self->state.st->presence_offline, count_published(replies, scripts));
        rp.deliver(true);
      },
      [rp]() mutable { rp.deliver(true); });
  return rp;
}

} // namespace hubnode::presence
