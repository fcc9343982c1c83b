// Who watches which users, and the presence_changed fan-out to them. A
// watch lasts until the connection unwatches the user or is DOWN.
#pragma once

#include "src/base/log.hpp"

#include "actors/presence/state.hpp"

#include <string>

namespace hubnode::presence {

// Empty, or why the whole request was refused.
std::string watch(presence_ptr self, const connection_actor& conn,
                  const user_list& users);
void unwatch(presence_ptr self, const connection_actor& conn, const user_list& users);
void watcher_down(presence_ptr self, const caf::actor_addr& conn);

void notify_watchers(presence_ptr self, user_id user, bool online);
// A transition from the P`presence` channel (cluster mode).
void on_event(presence_ptr self, user_id user, bool online);

} // namespace hubnode::presence
