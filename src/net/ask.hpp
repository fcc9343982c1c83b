// Requests to actors from code that is not an actor (HTTP handlers on Asio
// threads). A short-lived actor makes the request, so the I/O thread never
// blocks; the handlers run on that actor and must post back to their own
// executor themselves.
#pragma once

#include "src/base/log.hpp"

#include "caf/actor_system.hpp"
#include "caf/event_based_actor.hpp"

namespace hubnode {

template <class Handle, class OnReply, class OnError, class... Ts>
void ask(caf::actor_system& system, const Handle& dest, caf::timespan timeout,
         OnReply on_reply, OnError on_error, Ts... xs) {
  system.spawn([=](caf::event_based_actor* self) {
    self->request(dest, timeout, xs...).then(on_reply, on_error);
  });
}

} // namespace hubnode
