#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "presence"

#include "actors/presence/watchers.hpp"

namespace hubnode::presence {

namespace {

void forget_watcher(presence_ptr self, const caf::actor_addr& conn, user_id user) {
  auto& watchers = self->state.watchers;
  auto i = watchers.find(user);
  if (i == watchers.end())
    return;
  i->second.erase(conn);
  if (i->second.empty())
    watchers.erase(i);
}

} // namespace

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

// This node's own transitions included: in cluster mode the only source of
// watcher notifications, so that the watchers of every node hear of each
// transition exactly once.
void on_event(presence_ptr self, user_id user, bool online) {
  if (!self->state.mirror) {
    CAF_LOG_WARNING("presence event without cluster mode" << CAF_ARG(user));
    return;
  }
  notify_watchers(self, user, online);
}

} // namespace hubnode::presence
