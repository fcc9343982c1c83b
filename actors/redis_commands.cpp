#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "redis"

#include "actors/redis_commands.hpp"

#include "actors/redis_link.hpp"
#include "src/redis/commands.hpp"

#include <algorithm>

#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

// The redis actor's states (redis_link.hpp), and what a pipeline meets:
//
//   unknown/up ── pipeline: the idle connection is probed first; a server
//      │          that closed it (a restart) gets one connect at once, and
//      │          the pipeline runs on the new connection
//      │ a pipeline fails (I/O, timeout): its caller gets redis_errc::failed
//      v
//    down ── pipelines fail at once (redis_errc::down), nothing is sent;
//      │     the reconnect timer (backoff) connects again
//      └── connect ok ──> up

// The public interface plus its own timer.
using redis_impl = redis_actor::extend<caf::reacts_to<reconnect_atom>>;

struct redis_state {
  redis_settings cfg;
  stats* st = nullptr;
  redis_connection conn;
  link_status link;
  std::vector<redis_listener> listeners;

  static const char* name;
  static constexpr const char* link_label = "redis";
};

const char* redis_state::name = "redis";

using redis_ptr = redis_impl::stateful_pointer<redis_state>;

void tell_listeners(redis_ptr self, bool up) {
  for (auto& listener : self->state.listeners)
    self->send(listener, redis_state_atom::value, up);
}

// The news of went_up/went_down (redis_link.hpp). Down at start is no news
// to anyone: a listener hears the current state when it starts listening,
// and the first attempt is over by then.
void announce(redis_ptr self, bool up, link_status::state was) {
  if (!up && was == link_status::state::down)
    return;
  self->state.st->redis_up.store(up ? 1 : 0, std::memory_order_relaxed);
  if (up || was == link_status::state::up)
    tell_listeners(self, up);
}

void connect(redis_ptr self) {
  auto& s = self->state;
  s.link.reconnect_scheduled = false;
  if (s.conn.connected())
    return;
  auto why = s.conn.connect(s.cfg.endpoint, s.cfg.connect_timeout, s.cfg.command_timeout);
  if (why.empty())
    went_up(self);
  else
    went_down(self, std::move(why));
}

// The server closed the idle connection, most likely a restart that is over
// already: one connect right away, so that the command at hand is not lost to
// it. Listeners hear down and up all the same, since Redis may have lost its
// data. A failed attempt leaves the reconnect timer to go on.
void revive(redis_ptr self, std::string why) {
  auto& s = self->state;
  went_down(self, std::move(why));
  auto again =
      s.conn.connect(s.cfg.endpoint, s.cfg.connect_timeout, s.cfg.command_timeout);
  if (again.empty()) {
    went_up(self);
    return;
  }
  stats::bump(s.st->redis_errors);
  s.link.reason = std::move(again);
}

// While down, commands fail at once: the next connect attempt is the
// reconnect timer's business, not every caller's.
caf::result<redis_replies> run(redis_ptr self, const redis_pipeline& pipeline) {
  auto& s = self->state;
  if (s.conn.connected())
    if (auto why = s.conn.probe(); !why.empty())
      revive(self, std::move(why));
  if (!s.conn.connected()) {
    stats::bump(s.st->redis_errors);
    return caf::make_error(redis_errc::down, "redis down: " + s.link.reason);
  }
  auto result = s.conn.run(pipeline);
  if (!result.ok()) {
    if (s.conn.connected()) { // the pipeline was refused before any I/O
      stats::bump(s.st->redis_errors);
      return caf::make_error(redis_errc::failed, std::move(result.error));
    }
    went_down(self, result.error);
    return caf::make_error(redis_errc::failed, std::move(result.error));
  }
  auto errors = std::count_if(result.replies.begin(), result.replies.end(),
                              [](const redis_reply& reply) { return reply.is_error(); });
  if (errors > 0) {
    stats::bump(s.st->redis_errors, static_cast<std::uint64_t>(errors));
    CAF_LOG_DEBUG("error replies" << CAF_ARG(errors));
  }
  return std::move(result.replies);
}

void listen(redis_ptr self, const redis_listener& listener) {
  auto& listeners = self->state.listeners;
  if (std::find(listeners.begin(), listeners.end(), listener) == listeners.end())
    listeners.push_back(listener);
  self->send(listener, redis_state_atom::value, self->state.link.up());
}

redis_impl::behavior_type redis(redis_ptr self, redis_settings cfg, stats* st) {
  auto& s = self->state;
  s.cfg = std::move(cfg);
  s.st = st;
  s.link.backoff = s.cfg.backoff_min;
  st->redis_up.store(0, std::memory_order_relaxed);
  // The first attempt right away. A detached actor initializes on its own
  // thread, after spawn returned, so nobody waits for Redis to start the
  // node; and the first listener already hears the outcome.
  connect(self);
  return {
      [self](redis_atom, const redis_pipeline& pipeline) { return run(self, pipeline); },
      [self](listen_atom, const redis_listener& listener) { listen(self, listener); },
      [self](reconnect_atom) { connect(self); },
  };
}

} // namespace

redis_actor spawn_redis(caf::actor_system& sys, redis_settings cfg, stats& st) {
  return sys.spawn<caf::detached>(redis, std::move(cfg), &st);
}

} // namespace hubnode
