#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "redis"

#include "actors/redis_subscriber.hpp"

#include "actors/redis_link.hpp"
#include "src/redis/subscriber.hpp"
#include "src/redis/wakeup.hpp"

#include <set>
#include <utility>

#include "caf/send.hpp"
#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

// The subscriber's states: its link's (redis_link.hpp), with "down" split in
// two, since "up" means every channel is confirmed.
//
//   unknown/down ──connect ok, SUBSCRIBE every channel──> resubscribing
//        ^   ^                                                 │
//        │   └─────────────── a read or send fails ────────────┤
//        │                                                     │ Redis confirmed
//        └───────────────── a read or send fails ────── up <───┘ them all
//
// Connected (resubscribing or up), it waits on its socket in rounds of at
// most cfg.poll_interval, and every message for it ends a round at once: a
// subscribe goes out to Redis as soon as it arrives. A subscribe request is
// answered true once Redis confirmed it, false at once while down and when
// the connection breaks before that.

// Its own timer besides reconnect_atom; not part of its public interface.
using poll_atom = caf::atom_constant<caf::atom("poll")>;

using subscriber_impl =
    subscriber_actor::extend<caf::reacts_to<reconnect_atom>, caf::reacts_to<poll_atom>>;

// A subscribe request, answered once confirmed() reaches `confirmed_at`.
struct awaiting_confirmation {
  std::uint64_t confirmed_at;
  caf::typed_response_promise<bool> promise;
};

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
  std::vector<awaiting_confirmation> awaiting;

  static const char* name;
  static constexpr const char* link_label = "pub/sub";
};

const char* subscriber_state::name = "subscriber";

// The actor with a wake-up for its waits on the socket: every message from
// someone else notifies it. Its own messages (the next round, a timer) are
// sent between waits, never during one.
class subscriber_class : public subscriber_impl::stateful_base<subscriber_state> {
public:
  using super = subscriber_impl::stateful_base<subscriber_state>;

  subscriber_class(caf::actor_config& config, redis_settings cfg, stats* st,
                   caf::actor sink, const std::vector<std::string>& channels)
      : super(config) {
    state.cfg = std::move(cfg);
    state.st = st;
    state.sink = std::move(sink);
    state.channels.insert(channels.begin(), channels.end());
    state.link.backoff = state.cfg.backoff_min;
  }

  behavior_type make_behavior() override;

  using super::enqueue;

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) override {
    auto own = what && what->sender.get() == ctrl();
    super::enqueue(std::move(what), host);
    if (!own)
      wakeup_.notify();
  }

  const poll_wakeup& wakeup() const { return wakeup_; }

private:
  // A member of the actor, not of its state: senders may still notify after
  // the state is gone.
  poll_wakeup wakeup_;
};

using subscriber_ptr = subscriber_class*;

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

// Answers the subscribe requests Redis has confirmed; all of them (false)
// once the connection is gone.
void answer_awaiting(subscriber_ptr self) {
  auto& s = self->state;
  auto connected = s.sub.connected();
  std::vector<awaiting_confirmation> still;
  for (auto& entry : s.awaiting) {
    if (connected && entry.confirmed_at > s.sub.confirmed())
      still.push_back(std::move(entry));
    else
      entry.promise.deliver(connected);
  }
  s.awaiting.swap(still);
}

// The news of went_up/went_down (redis_link.hpp): every failure ends a
// resubscribe and the waits for confirmations, a change tells the sink.
void announce(subscriber_ptr self, bool up, link_status::state was) {
  if (!up) {
    self->state.resubscribing = false;
    answer_awaiting(self);
  }
  if (up || was != link_status::state::down)
    tell_sink(self, up);
}

void check_resubscribed(subscriber_ptr self) {
  auto& s = self->state;
  if (!s.resubscribing || s.sub.confirmed() < s.up_when_confirmed)
    return;
  s.resubscribing = false;
  CAF_LOG_DEBUG("pub/sub subscribed" << CAF_ARG2("channels", s.channels.size()));
  went_up(self);
}

// Subscribes again to every channel of the set, then polls; "up" follows
// once Redis has confirmed them all.
void connect(subscriber_ptr self) {
  auto& s = self->state;
  s.link.reconnect_scheduled = false;
  if (s.sub.connected())
    return;
  auto why = s.sub.connect(s.cfg.endpoint, s.cfg.connect_timeout, s.cfg.command_timeout);
  if (!why.empty())
    return went_down(self, std::move(why));
  if (!s.sub.subscribe({s.channels.begin(), s.channels.end()}))
    return went_down(self, s.sub.error());
  CAF_LOG_DEBUG("pub/sub connected, subscribing"
                << CAF_ARG2("channels", s.channels.size()));
  s.up_when_confirmed = s.sub.requested();
  s.resubscribing = true;
  check_resubscribed(self);
  schedule_poll(self);
}

// One round: whatever arrived within the round goes to the sink, then the
// next round queues behind the messages that came meanwhile.
void poll(subscriber_ptr self) {
  auto& s = self->state;
  s.poll_scheduled = false;
  if (!s.sub.connected())
    return;
  for (auto& [channel, message] : s.sub.poll(s.cfg.poll_interval, &self->wakeup())) {
    // Messages still in flight when a channel was left are not wanted.
    if (s.channels.count(channel) > 0)
      caf::anon_send(s.sink, remote_atom::value, std::move(channel), std::move(message));
  }
  if (!s.sub.connected())
    return went_down(self, s.sub.error());
  answer_awaiting(self);
  check_resubscribed(self);
  schedule_poll(self);
}

void change(subscriber_ptr self, const std::vector<std::string>& channels, bool add) {
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
    went_down(self, s.sub.error());
}

// Channels already subscribed wait for what was sent before them: Redis
// confirms in order, so the answer means they are in effect.
caf::result<bool> subscribe(subscriber_ptr self,
                            const std::vector<std::string>& channels) {
  change(self, channels, true);
  auto& s = self->state;
  if (!s.sub.connected())
    return false;
  if (s.sub.confirmed() >= s.sub.requested())
    return true;
  auto rp = self->make_response_promise<bool>();
  s.awaiting.push_back({s.sub.requested(), rp});
  return rp;
}

subscriber_impl::behavior_type subscriber_class::make_behavior() {
  auto self = this;
  // Nobody else would end it: it lives as long as the actor it feeds.
  monitor(state.sink);
  set_down_handler([self](caf::down_msg& msg) {
    if (msg.source == self->state.sink.address())
      self->quit(msg.reason);
  });
  // As the redis actor: on its own thread, after spawn returned.
  connect(self);
  return {
      [self](subscribe_atom, const std::vector<std::string>& channels) {
        return subscribe(self, channels);
      },
      [self](unsub_atom, const std::vector<std::string>& channels) {
        change(self, channels, false);
      },
      [self](reconnect_atom) { connect(self); },
      [self](poll_atom) { poll(self); },
  };
}

} // namespace

subscriber_actor spawn_subscriber(caf::actor_system& sys, redis_settings cfg, stats& st,
                                  caf::actor sink, std::vector<std::string> channels) {
  return sys.spawn<subscriber_class, caf::detached>(std::move(cfg), &st, std::move(sink),
                                                    std::move(channels));
}

} // namespace hubnode
