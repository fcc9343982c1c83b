#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "redis"

#include "actors/redis.hpp"

#include "src/redis/client.hpp"

#include <algorithm>
#include <set>

#include "caf/send.hpp"
#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

// Timers the actors send themselves; not part of their public interfaces.
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;
using poll_atom = caf::atom_constant<caf::atom("poll")>;

// How long one round of the subscriber waits on its socket: short enough
// that subscribe/unsub and exit messages wait at most this long, long enough
// that an idle subscriber sleeps instead of spinning.
constexpr auto poll_interval = std::chrono::milliseconds(20);

// Up/down of one connection and when to try again. Starts unknown, so that
// the first outcome, up or down, counts as a transition.
struct link_status {
  enum class state : std::uint8_t { unknown, up, down };
  state current = state::unknown;
  caf::timespan backoff{0};
  bool reconnect_scheduled = false;
  std::string reason; // of the last failure

  bool up() const { return current == state::up; }
};

// Whatever the settings say, attempts never come faster than this.
constexpr auto backoff_floor = caf::timespan{std::chrono::milliseconds(10)};

template <class Self>
void schedule_reconnect(Self* self, link_status& link, const redis_settings& cfg) {
  if (link.reconnect_scheduled)
    return;
  link.reconnect_scheduled = true;
  auto delay = std::max(link.backoff, backoff_floor);
  self->delayed_send(self, delay, reconnect_atom::value);
  link.backoff = std::max(std::min(delay * 2, cfg.backoff_max), backoff_floor);
}

std::string where(const redis_settings& cfg) {
  return cfg.endpoint.host + ":" + std::to_string(cfg.endpoint.port);
}

// -- the command connection -------------------------------------------------

// The public interface plus its own timer.
using redis_impl = redis_actor::extend<caf::reacts_to<reconnect_atom>>;

struct redis_state {
  redis_settings cfg;
  stats* st = nullptr;
  redis_connection conn;
  link_status link;
  std::vector<redis_listener> listeners;

  static const char* name;
};

const char* redis_state::name = "redis";

using redis_ptr = redis_impl::stateful_pointer<redis_state>;

void tell_listeners(redis_ptr self, bool up) {
  for (auto& listener : self->state.listeners)
    self->send(listener, redis_state_atom::value, up);
}

void went_up(redis_ptr self) {
  auto& link = self->state.link;
  link.backoff = self->state.cfg.backoff_min;
  link.reason.clear();
  if (link.up())
    return;
  link.current = link_status::state::up;
  self->state.st->redis_up.store(1, std::memory_order_relaxed);
  CAF_LOG_INFO("redis up" << CAF_ARG2("at", where(self->state.cfg)));
  tell_listeners(self, true);
}

// Every failed connect and command lands here; the connection is closed
// already. Only the first failure after being up (or at start) is news.
void went_down(redis_ptr self, std::string why) {
  auto& link = self->state.link;
  stats::bump(self->state.st->redis_errors);
  auto was = link.current;
  link.current = link_status::state::down;
  link.reason = std::move(why);
  schedule_reconnect(self, link, self->state.cfg);
  if (was == link_status::state::down) {
    CAF_LOG_DEBUG("redis still down" << CAF_ARG2("reason", link.reason));
    return;
  }
  self->state.st->redis_up.store(0, std::memory_order_relaxed);
  CAF_LOG_INFO("redis down: " << link.reason);
  // Down at start is no news to anyone: a listener hears the current state
  // when it starts listening, and the first attempt is over by then.
  if (was == link_status::state::up)
    tell_listeners(self, false);
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

// -- the pub/sub connection -------------------------------------------------

// The public interface plus its own timers.
using subscriber_impl =
    subscriber_actor::extend<caf::reacts_to<reconnect_atom>, caf::reacts_to<poll_atom>>;

struct subscriber_state {
  redis_settings cfg;
  stats* st = nullptr;
  caf::actor sink;
  redis_subscription sub;
  link_status link;
  // What the node wants to hear, whatever the connection: a new connection
  // subscribes to all of it again.
  std::set<std::string> channels;
  // Set after a reconnect: "up" waits until confirmed() reaches this, so that
  // a sink told "up" knows every channel is subscribed again.
  std::uint64_t up_when_confirmed = 0;
  bool resubscribing = false;
  bool poll_scheduled = false;

  static const char* name;
};

const char* subscriber_state::name = "subscriber";

using subscriber_ptr = subscriber_impl::stateful_pointer<subscriber_state>;

// The sink is a dynamically typed handle, which a typed actor may only
// anon_send to.
void tell_sink(subscriber_ptr self, bool up) {
  caf::anon_send(self->state.sink, redis_state_atom::value, up);
}

void schedule_poll(subscriber_ptr self) {
  if (self->state.poll_scheduled)
    return;
  self->state.poll_scheduled = true;
  self->send(self, poll_atom::value);
}

void sub_went_up(subscriber_ptr self) {
  auto& link = self->state.link;
  link.backoff = self->state.cfg.backoff_min;
  link.reason.clear();
  self->state.resubscribing = false;
  if (link.up())
    return;
  link.current = link_status::state::up;
  CAF_LOG_INFO("pub/sub up" << CAF_ARG2("at", where(self->state.cfg))
                            << CAF_ARG2("channels", self->state.channels.size()));
  tell_sink(self, true);
}

void sub_went_down(subscriber_ptr self, std::string why) {
  auto& s = self->state;
  stats::bump(s.st->redis_errors);
  s.resubscribing = false;
  auto was = s.link.current;
  s.link.current = link_status::state::down;
  s.link.reason = std::move(why);
  schedule_reconnect(self, s.link, s.cfg);
  if (was == link_status::state::down) {
    CAF_LOG_DEBUG("pub/sub still down" << CAF_ARG2("reason", s.link.reason));
    return;
  }
  CAF_LOG_INFO("pub/sub down: " << s.link.reason);
  tell_sink(self, false);
}

// Subscribes again to every channel of the set, then polls; "up" follows
// once Redis has confirmed them all.
void sub_connect(subscriber_ptr self) {
  auto& s = self->state;
  s.link.reconnect_scheduled = false;
  if (s.sub.connected())
    return;
  auto why = s.sub.connect(s.cfg.endpoint, s.cfg.connect_timeout, s.cfg.command_timeout);
  if (!why.empty()) {
    sub_went_down(self, std::move(why));
    return;
  }
  if (!s.sub.subscribe({s.channels.begin(), s.channels.end()})) {
    sub_went_down(self, s.sub.error());
    return;
  }
  CAF_LOG_DEBUG("pub/sub connected, subscribing"
                << CAF_ARG2("channels", s.channels.size()));
  s.up_when_confirmed = s.sub.requested();
  s.resubscribing = true;
  if (s.sub.confirmed() >= s.up_when_confirmed)
    sub_went_up(self);
  schedule_poll(self);
}

// One round: whatever arrived within poll_interval goes to the sink, then the
// next round queues behind the messages that came meanwhile.
void sub_poll(subscriber_ptr self) {
  auto& s = self->state;
  s.poll_scheduled = false;
  if (!s.sub.connected())
    return;
  for (auto& [channel, message] : s.sub.poll(poll_interval)) {
    // Messages still in flight when a channel was left are not wanted.
    if (s.channels.count(channel) > 0)
      caf::anon_send(s.sink, remote_atom::value, std::move(channel), std::move(message));
  }
  if (!s.sub.connected()) {
    sub_went_down(self, s.sub.error());
    return;
  }
  if (s.resubscribing && s.sub.confirmed() >= s.up_when_confirmed)
    sub_went_up(self);
  schedule_poll(self);
}

void sub_change(subscriber_ptr self, const std::vector<std::string>& channels, bool add) {
  auto& s = self->state;
  std::vector<std::string> changed;
  for (auto& channel : channels) {
    auto did = add ? s.channels.insert(channel).second : s.channels.erase(channel) > 0;
    if (did)
      changed.push_back(channel);
  }
  // While disconnected the set is all there is; the reconnect subscribes.
  if (changed.empty() || !s.sub.connected())
    return;
  CAF_LOG_DEBUG((add ? "subscribe" : "unsubscribe") << CAF_ARG(changed));
  auto sent = add ? s.sub.subscribe(changed) : s.sub.unsubscribe(changed);
  if (!sent)
    sub_went_down(self, s.sub.error());
}

subscriber_impl::behavior_type subscriber(subscriber_ptr self, redis_settings cfg,
                                          stats* st, caf::actor sink,
                                          std::vector<std::string> channels) {
  auto& s = self->state;
  s.cfg = std::move(cfg);
  s.st = st;
  s.sink = std::move(sink);
  s.channels.insert(channels.begin(), channels.end());
  s.link.backoff = s.cfg.backoff_min;
  // Nobody else would end it: it lives as long as the actor it feeds.
  self->monitor(s.sink);
  self->set_down_handler([self](caf::down_msg& msg) {
    if (msg.source == self->state.sink.address())
      self->quit(msg.reason);
  });
  // As the redis actor: on its own thread, after spawn returned.
  sub_connect(self);
  return {
      [self](subscribe_atom, const std::vector<std::string>& channels) {
        sub_change(self, channels, true);
      },
      [self](unsub_atom, const std::vector<std::string>& channels) {
        sub_change(self, channels, false);
      },
      [self](reconnect_atom) { sub_connect(self); },
      [self](poll_atom) { sub_poll(self); },
  };
}

} // namespace

redis_actor spawn_redis(caf::actor_system& sys, redis_settings cfg, stats& st) {
  return sys.spawn<caf::detached>(redis, std::move(cfg), &st);
}

subscriber_actor spawn_subscriber(caf::actor_system& sys, redis_settings cfg, stats& st,
                                  caf::actor sink, std::vector<std::string> channels) {
  return sys.spawn<caf::detached>(subscriber, std::move(cfg), &st, std::move(sink),
                                  std::move(channels));
}

} // namespace hubnode
