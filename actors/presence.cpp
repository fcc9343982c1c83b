#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "presence"

#include "actors/presence.hpp"

#include "actors/redis_batch.hpp"
#include "src/base/clock.hpp"
#include "src/redis/presence_scripts.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

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
// A grace period that runs out while the node still has handshakes it has
// not finished is held open (all held users checked together every
// hold_step, each up to max_hold past its grace): the user's reconnect may be
// among them, waiting behind a storm of others. Once none is left, one more
// grace message goes to the back of the mailbox, behind the `connected` of
// any reconnect just admitted.
struct user_entry {
  std::uint64_t connections = 0;
  std::uint64_t epoch = 0;
  caf::actor_clock::time_point hold_until;
  bool confirming = false;
};

constexpr caf::timespan hold_step = std::chrono::milliseconds(10);

// Cluster mode: Redis mirrors the local truth. Every exchange goes through
// one redis_batch, so what this actor sends reaches Redis in the order sent:
// a reap sent before a user's connect can never undo it. That order is what
// makes the resync below safe.
struct mirror_state {
  redis_batch redis;
  redis_keys keys;
  // Redis said it was down; the next "up" means it may have lost our writes.
  bool redis_down = false;
  // A heartbeat got through, so P`nodes` must have this node from now on.
  bool registered = false;
  // Graceful shutdown: this node writes nothing more to Redis.
  bool withdrawn = false;
  bool resync_running = false;
  // Asked for while one was running: run again as soon as it ends.
  bool resync_again = false;
  // A part of a resync failed: run again on the next heartbeat.
  bool resync_failed = false;
  // Dead nodes this node took out of P`nodes` without finishing their reap:
  // the next heartbeat registers them again, so that a reaper pass (of any
  // survivor) claims them again instead of none ever looking at them.
  std::set<std::string> unreaped{};
  // Redis came back at this time: until every node had a node_ttl to beat
  // again, a missing heartbeat key is the outage's, not a death.
  std::optional<caf::actor_clock::time_point> redis_back{};
};

struct presence_state {
  presence_settings cfg;
  stats* st = nullptr;
  std::unordered_map<user_id, user_entry> users;
  // Epochs come from one counter for all users, so an entry that was
  // forgotten and created again never reuses the epoch of an old timer.
  std::uint64_t last_epoch = 0;
  std::unordered_map<user_id, std::unordered_map<caf::actor_addr, connection_actor>>
      watchers;
  // The reverse index, so that a connection's DOWN finds what it watched.
  std::unordered_map<caf::actor_addr, std::unordered_set<user_id>> watching;
  std::optional<mirror_state> mirror; // cluster mode only
  // Users whose grace is held, with the epoch held, in the order their holds
  // end (every hold is as long); a hold timer runs while there are any.
  std::deque<std::pair<user_id, std::uint64_t>> held;
  bool hold_timer = false;

  static const char* name;
};

const char* presence_state::name = "presence";

using presence_ptr = presence_actor::stateful_pointer<presence_state>;

// ---- watchers -------------------------------------------------------------

void notify_watchers(presence_ptr self, user_id user, bool online) {
  auto i = self->state.watchers.find(user);
  if (i == self->state.watchers.end())
    return;
  for (auto& [addr, conn] : i->second)
    self->send(conn, changed_atom::value, user, online);
}

// A request that would take a connection over the limit is refused as a
// whole, so that the client knows exactly which users it watches.
std::string watch(presence_ptr self, const connection_actor& conn,
                  const user_list& users) {
  auto& st = self->state;
  auto i = st.watching.find(conn.address());
  std::unordered_set<user_id> fresh(users.begin(), users.end());
  if (i != st.watching.end())
    for (auto user : i->second)
      fresh.erase(user);
  auto watched = i == st.watching.end() ? 0 : i->second.size();
  if (watched + fresh.size() > st.cfg.max_watched)
    return "watch list full: at most " + std::to_string(st.cfg.max_watched) +
           " users per connection, unwatch some first";
  if (i == st.watching.end()) {
    i = st.watching.emplace(conn.address(), std::unordered_set<user_id>{}).first;
    self->monitor(conn);
  }
  for (auto user : fresh) {
    i->second.insert(user);
    st.watchers[user].emplace(conn.address(), conn);
  }
  return {};
}

void forget_watcher(presence_ptr self, const caf::actor_addr& conn, user_id user) {
  auto& watchers = self->state.watchers;
  auto i = watchers.find(user);
  if (i == watchers.end())
    return;
  i->second.erase(conn);
  if (i->second.empty())
    watchers.erase(i);
}

void unwatch(presence_ptr self, const connection_actor& conn, const user_list& users) {
  auto i = self->state.watching.find(conn.address());
  if (i == self->state.watching.end())
    return;
  for (auto user : users)
    if (i->second.erase(user) > 0)
      forget_watcher(self, conn.address(), user);
}

void watcher_down(presence_ptr self, const caf::actor_addr& conn) {
  auto i = self->state.watching.find(conn);
  if (i == self->state.watching.end())
    return;
  for (auto user : i->second)
    forget_watcher(self, conn, user);
  self->state.watching.erase(i);
}

// ---- talking to Redis -----------------------------------------------------

// The redis actor answers by itself, with an error when Redis is down or
// slow; this bound is for a redis actor that does not answer at all.
constexpr auto redis_timeout = std::chrono::seconds(2);
// Keys per SCAN step and commands per pipeline of a bulk rewrite.
constexpr std::size_t batch_size = 500;
// Commands per combined pipeline: a bulk rewrite's and a little more.
constexpr std::size_t max_pipeline = 2 * batch_size;

using replies_handler = std::function<void(const redis_replies&)>;
using failure_handler = std::function<void()>;

mirror_state& mirror(presence_ptr self) {
  return *self->state.mirror;
}

// Whether this node still writes its presence to Redis.
bool mirroring(presence_ptr self) {
  return self->state.mirror && !self->state.mirror->withdrawn;
}

// A script that fails in Redis (an error reply) is a bug to see in the log.
void log_error_replies(const char* what, const redis_replies& replies) {
  for (auto& reply : replies)
    if (reply.is_error()) {
      CAF_LOG_WARNING("Redis error reply" << CAF_ARG(what)
                                          << CAF_ARG2("error", reply.str));
      return;
    }
}

// Every Redis exchange: never blocks this actor, never waits longer than the
// timeout, and a failure is only a warning: the local truth stays, and the
// next resync repairs what Redis missed.
void exchange(presence_ptr self, redis_pipeline pipeline, const char* what,
              replies_handler on_replies, failure_handler on_failure = {}) {
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

// Every script answers 1 when it published a transition.
bool published(const redis_replies& replies, std::size_t i) {
  return integer_at(replies, i) == 1;
}

// Of the first `scripts` replies (all when not given).
std::size_t
count_published(const redis_replies& replies,
                std::size_t scripts = std::numeric_limits<std::size_t>::max()) {
  std::size_t result = 0;
  for (std::size_t i = 0; i < std::min(scripts, replies.size()); ++i)
    result += published(replies, i) ? 1 : 0;
  return result;
}

// Counts the transitions the scripts of a pipeline made (those that answered
// 1) into `which`: online or offline transitions made by this node.
replies_handler count_transitions(presence_ptr self, counter stats::*which) {
  return [self, which](const redis_replies& replies) {
    stats::bump(self->state.st->*which, count_published(replies));
  };
}

// Events name the node that made the transition, the reaper of a dead node
// included: that is the node whose script published it.
std::string event_of(presence_ptr self, user_id user, bool online) {
  return presence_event(user, online, self->state.cfg.node_id, now_ms());
}

const user_entry* local_entry(presence_ptr self, user_id user) {
  auto i = self->state.users.find(user);
  return i == self->state.users.end() ? nullptr : &i->second;
}

// ---- mirroring connects and disconnects -----------------------------------

// This node's count of `user` (0 during the grace) into Redis, and the user
// into P`online`. Also used on disconnect, so that a Redis that lost the user
// meanwhile gets it back with the next change.
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

// ---- SCAN over every P`presence:ID` ---------------------------------------

using batch_handler = std::function<void(const user_list&)>;
using done_handler = std::function<void(bool complete)>;

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

// Hands the users of every P`presence:ID` to `on_batch`, a SCAN step at a
// time (a user may come twice; every batch handler is idempotent), then
// says whether the walk got to the end.
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

// ---- resync: Redis made to say what this node knows -----------------------

void resync(presence_ptr self);

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

// ---- heartbeat and the reaper of dead nodes --------------------------------

std::vector<std::string> other_nodes(presence_ptr self, const redis_reply& members) {
  std::vector<std::string> result;
  for (auto& member : members.elements)
    if (member.str != self->state.cfg.node_id)
      result.push_back(member.str);
  return result;
}

// Every field of the dead `node`, user by user. The script does nothing once
// the node's heartbeat is back (it restarted and clears its own entries).
void reap_node(presence_ptr self, std::string node) {
  CAF_LOG_INFO("reaping a dead node" << CAF_ARG(node));
  auto failed = std::make_shared<bool>(false);
  auto on_batch = [self, node, failed](const user_list& users) {
    auto& keys = mirror(self).keys;
    redis_pipeline pipeline;
    for (auto user : users)
      pipeline.push_back(
          presence_scripts::reap(keys, user, node, event_of(self, user, false), true));
    exchange(self, std::move(pipeline), "reap",
             count_transitions(self, &stats::presence_offline),
             [failed] { *failed = true; });
  };
  scan_users(self, "0", on_batch, [self, node, failed](bool complete) {
    auto done = [self, node, failed, complete] {
      if (complete && !*failed)
        return;
      CAF_LOG_WARNING("dead node not fully reaped, registered again" << CAF_ARG(node));
      mirror(self).unreaped.insert(node);
    };
    // The last batch's reaps are still in flight: a PING queued behind them
    // answers after they did.
    exchange(
        self, {{"PING"}}, "reap", [done](const redis_replies&) { done(); },
        [failed, done] {
          *failed = true;
          done();
        });
  });
}

// Only the node whose SREM removed the dead node from P`nodes` reaps it, so
// two survivors noticing the same death at once do not both walk the keys.
// Without an answer the SREMs may have run: the nodes are registered again.
void claim_dead_nodes(presence_ptr self, std::vector<std::string> dead) {
  redis_pipeline pipeline;
  for (auto& node : dead)
    pipeline.push_back({"SREM", mirror(self).keys.nodes, node});
  exchange(
      self, std::move(pipeline), "claim",
      [self, dead](const redis_replies& replies) {
        for (std::size_t i = 0; i < dead.size(); ++i)
          if (integer_at(replies, i) == 1)
            reap_node(self, dead[i]);
      },
      [self, dead] { mirror(self).unreaped.insert(dead.begin(), dead.end()); });
}

bool reaper_waits(presence_ptr self) {
  auto& back = mirror(self).redis_back;
  return back && self->clock().now() < *back + self->state.cfg.node_ttl;
}

// A registered node whose heartbeat key has expired is dead.
void find_dead_nodes(presence_ptr self, std::vector<std::string> nodes) {
  if (nodes.empty())
    return;
  redis_pipeline pipeline;
  for (auto& node : nodes)
    pipeline.push_back({"EXISTS", mirror(self).keys.node(node)});
  exchange(self, std::move(pipeline), "liveness",
           [self, nodes](const redis_replies& replies) {
             std::vector<std::string> dead;
             for (std::size_t i = 0; i < nodes.size(); ++i)
               if (integer_at(replies, i) == 0)
                 dead.push_back(nodes[i]);
             if (!dead.empty())
               claim_dead_nodes(self, std::move(dead));
           });
}

// The heartbeat's replies: SET, SADD of this node, SADD of each node in
// `unreaped`, SMEMBERS of P`nodes`.
void on_beat(presence_ptr self, const redis_replies& replies,
             const std::set<std::string>& unreaped) {
  auto& m = mirror(self);
  auto members = 2 + unreaped.size();
  if (replies.size() != members + 1 ||
      replies[members].type != redis_reply::kind::array) {
    CAF_LOG_WARNING("unexpected heartbeat reply");
    return;
  }
  for (auto& dead : unreaped)
    m.unreaped.erase(dead);
  // Missing from P`nodes` after having been there: a survivor took this
  // node for dead and reaped it, or Redis lost its data.
  if (integer_at(replies, 1) == 1 && m.registered) {
    CAF_LOG_WARNING("this node was missing from Redis, writing it again");
    resync(self);
  }
  m.registered = true;
  if (!reaper_waits(self))
    find_dead_nodes(self, other_nodes(self, replies[members]));
}

// This node is alive for node_ttl more; then the reaper looks at the others.
void beat(presence_ptr self) {
  if (!mirroring(self))
    return;
  auto& keys = mirror(self).keys;
  auto& node = self->state.cfg.node_id;
  auto ttl =
      std::chrono::duration_cast<std::chrono::milliseconds>(self->state.cfg.node_ttl);
  redis_pipeline pipeline{{"SET", keys.node(node), "1", "PX",
                           std::to_string(std::max<std::int64_t>(1, ttl.count()))},
                          {"SADD", keys.nodes, node}};
  auto unreaped = mirror(self).unreaped;
  for (auto& dead : unreaped)
    pipeline.push_back({"SADD", keys.nodes, dead});
  pipeline.push_back({"SMEMBERS", keys.nodes});
  exchange(self, std::move(pipeline), "heartbeat",
           [self, unreaped](const redis_replies& replies) {
             on_beat(self, replies, unreaped);
           });
}

void on_heartbeat(presence_ptr self) {
  if (!mirroring(self))
    return;
  auto& m = mirror(self);
  if (m.resync_failed)
    resync(self);
  beat(self);
  self->delayed_send(self, self->state.cfg.heartbeat_interval, heartbeat_atom::value);
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

// Graceful shutdown: this node's fields go (the users it alone had go
// offline, with their events), then the node itself. Always answers true:
// a node that cannot reach Redis still shuts down, and survivors reap it.
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

// ---- local truth -----------------------------------------------------------

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

// A transition from the P`presence` channel, this node's own included: in
// cluster mode the only source of watcher notifications, so that the
// watchers of every node hear of each transition exactly once.
void on_event(presence_ptr self, user_id user, bool online) {
  if (!self->state.mirror) {
    CAF_LOG_WARNING("presence event without cluster mode" << CAF_ARG(user));
    return;
  }
  notify_watchers(self, user, online);
}

// ---- queries ---------------------------------------------------------------

user_list local_subset(presence_ptr self, const user_list& users) {
  user_list online;
  for (auto user : users)
    if (local_entry(self, user) != nullptr)
      online.push_back(user);
  return online;
}

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

// ---- the actor -------------------------------------------------------------

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

presence_actor::behavior_type presence(presence_ptr self, presence_settings cfg,
                                       stats* st, redis_actor redis) {
  self->state.cfg = std::move(cfg);
  self->state.st = st;
  self->set_down_handler([self](caf::down_msg& msg) { watcher_down(self, msg.source); });
  if (redis)
    start_mirror(self, std::move(redis));
  return {
      [self](connected_atom, user_id user) { on_connected(self, user); },
      [self](disconn_atom, user_id user) { on_disconnected(self, user); },
      [self](grace_atom, user_id user, std::uint64_t epoch) {
        on_grace(self, user, epoch);
      },
      [self](online_atom, user_id user) { return online(self, user); },
      [self](query_atom, const user_list& users) { return query(self, users); },
      [self](count_atom, user_id user) { return count(self, user); },
      [self](watch_atom, const connection_actor& conn, const user_list& users) {
        return watch(self, conn, users);
      },
      [self](unwatch_atom, const connection_actor& conn, const user_list& users) {
        unwatch(self, conn, users);
      },
      [self](event_atom, user_id user, bool online) { on_event(self, user, online); },
      [self](redis_state_atom, bool up) { on_redis_state(self, up); },
      [self](heartbeat_atom) { on_heartbeat(self); },
      [self](hold_atom) { on_hold_timer(self); },
      [self](withdraw_atom) { return withdraw(self); },
  };
}

} // namespace

presence_actor spawn_presence(caf::actor_system& sys, presence_settings cfg, stats& st,
                              redis_actor redis) {
  return sys.spawn(presence, std::move(cfg), &st, std::move(redis));
}

} // namespace hubnode
