#include "src/log.hpp"
#define CAF_LOG_COMPONENT "presence"

#include "actors/presence.hpp"

#include <unordered_map>
#include <unordered_set>

#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

// Per user; an offline user has no entry at all.
//
//             connected               disconn of the last connection
//  [offline] ----------> online ----------------------------------------> grace
//      ^     (epoch++)   count > 0    (arms grace(user, epoch))           count == 0
//      |                   ^                                               |    |
//      |                   +------- connected: reconnect (epoch++) --------+    |
//      +------------------- grace(user, epoch) with the current epoch ----------+
//
// The epoch changes whenever the user goes from no connection to one, so a
// grace timer is current only if no connection came after it was armed.
struct user_entry {
  std::uint64_t connections = 0;
  std::uint64_t epoch = 0;
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

  static const char* name;
};

const char* presence_state::name = "presence";

using presence_ptr = presence_actor::stateful_pointer<presence_state>;

void notify_watchers(presence_ptr self, user_id user, bool online) {
  auto i = self->state.watchers.find(user);
  if (i == self->state.watchers.end())
    return;
  for (auto& [addr, conn] : i->second)
    self->send(conn, changed_atom::value, user, online);
}

void on_connected(presence_ptr self, user_id user) {
  auto& st = self->state;
  auto [i, inserted] = st.users.try_emplace(user);
  auto& entry = i->second;
  if (inserted) {
    CAF_LOG_DEBUG("online" << CAF_ARG(user));
    stats::bump(st.st->presence_online);
    notify_watchers(self, user, true);
  } else if (entry.connections == 0) {
    CAF_LOG_DEBUG("reconnect within grace period" << CAF_ARG(user));
    stats::bump(st.st->reconnects);
  }
  if (entry.connections++ == 0)
    entry.epoch = ++st.last_epoch;
}

void on_disconnected(presence_ptr self, user_id user) {
  auto& st = self->state;
  auto i = st.users.find(user);
  if (i == st.users.end() || i->second.connections == 0) {
    CAF_LOG_WARNING("disconn without a matching connected" << CAF_ARG(user));
    return;
  }
  auto& entry = i->second;
  if (--entry.connections > 0)
    return;
  self->delayed_send(self, st.cfg.grace_period, grace_atom::value, user, entry.epoch);
}

void on_grace(presence_ptr self, user_id user, std::uint64_t epoch) {
  auto& st = self->state;
  auto i = st.users.find(user);
  if (i == st.users.end() || i->second.epoch != epoch)
    return;
  st.users.erase(i);
  CAF_LOG_DEBUG("offline" << CAF_ARG(user));
  stats::bump(st.st->presence_offline);
  notify_watchers(self, user, false);
}

bool is_online(presence_ptr self, user_id user) {
  return self->state.users.count(user) > 0;
}

void watch(presence_ptr self, const connection_actor& conn, const user_list& users) {
  auto& st = self->state;
  auto [i, first_watch] = st.watching.try_emplace(conn.address());
  if (first_watch)
    self->monitor(conn);
  for (auto user : users)
    if (i->second.insert(user).second)
      st.watchers[user].emplace(conn.address(), conn);
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

presence_actor::behavior_type presence(presence_ptr self, presence_settings cfg,
                                       stats* st) {
  self->state.cfg = cfg;
  self->state.st = st;
  self->set_down_handler([self](caf::down_msg& msg) { watcher_down(self, msg.source); });
  return {
      [self](connected_atom, user_id user) { on_connected(self, user); },
      [self](disconn_atom, user_id user) { on_disconnected(self, user); },
      [self](grace_atom, user_id user, std::uint64_t epoch) {
        on_grace(self, user, epoch);
      },
      [self](online_atom, user_id user) { return is_online(self, user); },
      [self](query_atom, const user_list& users) {
        user_list online;
        for (auto user : users)
          if (is_online(self, user))
            online.push_back(user);
        return online;
      },
      [self](count_atom, user_id user) {
        auto i = self->state.users.find(user);
        if (i == self->state.users.end())
          return caf::result<bool, std::uint64_t>{false, std::uint64_t{0}};
        return caf::result<bool, std::uint64_t>{true, i->second.connections};
      },
      [self](watch_atom, const connection_actor& conn, const user_list& users) {
        watch(self, conn, users);
      },
      [self](unwatch_atom, const connection_actor& conn, const user_list& users) {
        unwatch(self, conn, users);
      },
  };
}

} // namespace

presence_actor spawn_presence(caf::actor_system& sys, presence_settings cfg, stats& st) {
  return sys.spawn(presence, cfg, &st);
}

} // namespace hubnode
