#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "presence"

#include "actors/presence.hpp"

#include "actors/presence/grace.hpp"
#include "actors/presence/heartbeat.hpp"
#include "actors/presence/mirror.hpp"
#include "actors/presence/queries.hpp"
#include "actors/presence/state.hpp"
#include "actors/presence/watchers.hpp"

#include <utility>

// The presence actor's messages, each to the part that handles it (the
// parts are in actors/presence/).

namespace hubnode {

namespace presence {

const char* presence_state::name = "presence";

namespace {

presence_actor::behavior_type behavior(presence_ptr self, presence_settings cfg,
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

} // namespace presence

presence_actor spawn_presence(caf::actor_system& sys, presence_settings cfg, stats& st,
                              redis_actor redis) {
  return sys.spawn(presence::behavior, std::move(cfg), &st, std::move(redis));
}

} // namespace hubnode
