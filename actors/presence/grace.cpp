#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "presence"

#include "actors/presence/grace.hpp"

#include "actors/presence/mirror.hpp"
#include "actors/presence/watchers.hpp"

#include <chrono>

namespace hubnode::presence {

// Per user; an offline user has no entry at all. In cluster mode each arrow
// also sends one script to Redis [in brackets], so a connect and a
// disconnect cost one round trip each.
//
//              connected                           disconn of the last one
//  [offline] ------------------> online --------------------------------> grace
//      ^       (epoch++)        count > 0      [connect, count 0]        count == 0
//      |       [connect]          |  ^                                     |  |
//      |                          +--+ connected, disconn (count stays > 0)|  |
//      |                          [connect, count]                         |  |
//      |                             ^                                     |  |
//      |                             +------ connected: a reconnect -------+  |
//      |                                     (epoch++) [connect, count 1]     |
//      +------------- grace(user, epoch) with the current epoch [expire] -----+
//
// Watchers hear of the arrows into and out of [offline]: in memory mode from
// here, in cluster mode only from the events on P`presence`.
//
// The epoch changes whenever the user goes from no connection to one, so a
// grace timer is current only if no connection came after it was armed.
//
// On a node that checks its handshakes (cfg.admitting), the last arrow
// above has two steps more:
//
//             grace(user, epoch) while handshakes are pending
//     grace ---------------------------------------------------> held
//       |                                                          |
//       | grace(user, epoch), none pending          every hold_step:
//       | or hold_until passed                      none pending or
//       v                                           hold_until passed
//   confirming <-----------------------------------------------------+
//       |
//       | grace(user, epoch) again, from the back of the mailbox [expire]
//       v
//   [offline]
//
// A grace period that runs out while the node still has handshakes it has
// not finished is held open (all held users checked together every
// hold_step, each up to max_hold past its grace): the user's reconnect may be
// among them, waiting behind a storm of others. Once none is left, one more
// grace message goes to the back of the mailbox, behind the `connected` of
// any reconnect just admitted. A reconnect while held or confirming is the
// reconnect arrow above: the new epoch makes the pending grace message stale.

namespace {

constexpr caf::timespan hold_step = std::chrono::milliseconds(10);

void confirm_grace(presence_ptr self, user_id user, user_entry& entry) {
  entry.confirming = true;
  self->send(self, grace_atom::value, user, entry.epoch);
}

void arm_hold_timer(presence_ptr self) {
  auto& st = self->state;
  if (st.hold_timer || st.held.empty())
    return;
  st.hold_timer = true;
  self->delayed_send(self, hold_step, hold_atom::value);
}

// True: the grace of this entry is not over yet; a grace message will come.
bool hold_grace(presence_ptr self, user_id user, user_entry& entry) {
  auto& st = self->state;
  if (!st.cfg.admitting || entry.confirming)
    return false;
  if (st.cfg.admitting() && self->clock().now() < entry.hold_until) {
    st.held.emplace_back(user, entry.epoch);
    arm_hold_timer(self);
    return true;
  }
  confirm_grace(self, user, entry);
  return true;
}

} // namespace

const user_entry* local_entry(presence_ptr self, user_id user) {
  auto i = self->state.users.find(user);
  return i == self->state.users.end() ? nullptr : &i->second;
}

void on_connected(presence_ptr self, user_id user) {
  auto& st = self->state;
  auto [i, inserted] = st.users.try_emplace(user);
  auto& entry = i->second;
  if (!inserted && entry.connections == 0) {
    CAF_LOG_DEBUG("reconnect within grace period" << CAF_ARG(user));
    stats::bump(st.st->reconnects);
  }
  if (entry.connections++ == 0)
    entry.epoch = ++st.last_epoch;
  if (st.mirror) {
    mirror_count(self, user, entry.connections);
  } else if (inserted) {
    CAF_LOG_DEBUG("online" << CAF_ARG(user));
    stats::bump(st.st->presence_online);
    notify_watchers(self, user, true);
  }
}

void on_disconnected(presence_ptr self, user_id user) {
  auto& st = self->state;
  auto i = st.users.find(user);
  if (i == st.users.end() || i->second.connections == 0) {
    CAF_LOG_WARNING("disconn without a matching connected" << CAF_ARG(user));
    return;
  }
  auto& entry = i->second;
  --entry.connections;
  if (st.mirror)
    mirror_count(self, user, entry.connections);
  if (entry.connections == 0) {
    entry.hold_until = self->clock().now() + st.cfg.grace_period + st.cfg.max_hold;
    entry.confirming = false;
    self->delayed_send(self, st.cfg.grace_period, grace_atom::value, user, entry.epoch);
  }
}

// Ends the holds that are over: all of them once the backlog is done, else
// those past max_hold.
void on_hold_timer(presence_ptr self) {
  auto& st = self->state;
  st.hold_timer = false;
  bool behind = st.cfg.admitting();
  auto now = self->clock().now();
  while (!st.held.empty()) {
    auto [user, epoch] = st.held.front();
    auto i = st.users.find(user);
    if (i != st.users.end() && i->second.epoch == epoch && !i->second.confirming) {
      if (behind && now < i->second.hold_until)
        break;
      confirm_grace(self, user, i->second);
    }
    st.held.pop_front();
  }
  arm_hold_timer(self);
}

void on_grace(presence_ptr self, user_id user, std::uint64_t epoch) {
  auto& st = self->state;
  auto i = st.users.find(user);
  if (i == st.users.end() || i->second.epoch != epoch)
    return;
  if (hold_grace(self, user, i->second))
    return;
  st.users.erase(i);
  CAF_LOG_DEBUG("grace period over" << CAF_ARG(user));
  if (st.mirror) {
    mirror_expiry(self, user);
    return;
  }
  stats::bump(st.st->presence_offline);
  notify_watchers(self, user, false);
}

} // namespace hubnode::presence
