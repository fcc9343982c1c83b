#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "redis"

#include "actors/cluster.hpp"

#include "actors/redis_batch.hpp"
#include "actors/redis_subscriber.hpp"
#include "src/base/user_id.hpp"
#include "src/redis/keys.hpp"

#include <boost/json.hpp>
#include <optional>
#include <unordered_map>
#include <vector>

#include "caf/send.hpp"
#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace cluster_wire {

std::string encode(std::string_view node_id, std::string_view frame) {
  std::string result;
  result.reserve(node_id.size() + 1 + frame.size());
  result.append(node_id).append(1, '\n').append(frame);
  return result;
}

bool decode(std::string_view message, std::string_view& origin, std::string_view& frame) {
  auto newline = message.find('\n');
  if (newline == 0 || newline == std::string_view::npos || newline + 1 == message.size())
    return false;
  origin = message.substr(0, newline);
  frame = message.substr(newline + 1);
  return true;
}

} // namespace cluster_wire

namespace {

// Commands per pipeline: enough to amortise the round trip (two per
// publish); small enough that one pipeline stays well inside
// redis.command-timeout.
constexpr std::size_t max_pipeline = 512;

// This node's subscription to the channel of one user with a local
// connection.
struct user_subscription {
  // Redis confirmed it, and the pub/sub connection has not broken since.
  bool confirmed = false;
  // The registrations waiting for the subscriber's answer; while there are
  // some, that request is in flight.
  std::vector<caf::typed_response_promise<bool>> waiting;
  // Tells that answer from one to an earlier subscription of the user.
  std::uint64_t attempt = 0;
};

struct cluster_state {
  redis_settings cfg;
  hub_actor hub;
  presence_actor presence;
  subscriber_actor subscriber;
  stats* st = nullptr;
  redis_keys keys{""};
  // Users whose channel this node is subscribed to: those with a local
  // connection. The hub says when; this map keeps it idempotent.
  std::unordered_map<user_id, user_subscription> subscribed;
  std::uint64_t attempts = 0;
  // Publishes, in order, many to a round trip when busy; an idle node sends
  // a publish at once.
  std::optional<redis_batch> publishes;

  static const char* name;
};

const char* cluster_state::name = "cluster";

using cluster_ptr = cluster_actor::stateful_pointer<cluster_state>;

// A publish or a subscribe waits at most for a connect and a command of the
// redis actor or the subscriber (they answer false or an error themselves
// when Redis is down or slow); this is only the bound for one that does not
// answer at all.
caf::timespan redis_timeout(const redis_settings& cfg) {
  return cfg.connect_timeout + 2 * cfg.command_timeout;
}

std::string user_channel(cluster_ptr self, user_id user) {
  return self->state.keys.delivery(user);
}

// The subscriber's answer to one attempt; one for an earlier subscription of
// the user (unsubscribed since) is old news.
void confirmed(cluster_ptr self, user_id user, std::uint64_t attempt, bool ok) {
  auto i = self->state.subscribed.find(user);
  if (i == self->state.subscribed.end() || i->second.attempt != attempt)
    return;
  auto waiting = std::move(i->second.waiting);
  i->second.waiting.clear();
  i->second.confirmed = ok;
  for (auto& rp : waiting)
    rp.deliver(ok);
}

void ask_subscriber(cluster_ptr self, user_id user, user_subscription& entry) {
  auto attempt = entry.attempt = ++self->state.attempts;
  self->request(self->state.subscriber, redis_timeout(self->state.cfg),
                subscribe_atom::value, std::vector<std::string>{user_channel(self, user)})
      .then([self, user, attempt](bool ok) { confirmed(self, user, attempt, ok); },
            [self, user, attempt](caf::error& err) {
              CAF_LOG_WARNING("subscriber did not answer" << CAF_ARG(user)
                                                          << CAF_ARG(err));
              confirmed(self, user, attempt, false);
            });
}

// Answered once the subscriber confirmed the channel, so that the hub holds
// the welcome until a message published after it reaches this node. A failed
// subscription is asked for again by the next registration; the subscriber
// subscribes the channel anyway once Redis is back.
caf::result<bool> subscribe(cluster_ptr self, user_id user) {
  auto& entry = self->state.subscribed[user];
  if (entry.confirmed)
    return true;
  auto rp = self->make_response_promise<bool>();
  entry.waiting.push_back(rp);
  if (entry.waiting.size() == 1) {
    CAF_LOG_DEBUG("subscribe" << CAF_ARG(user));
    ask_subscriber(self, user, entry);
  }
  return rp;
}

void unsubscribe(cluster_ptr self, user_id user) {
  auto i = self->state.subscribed.find(user);
  if (i == self->state.subscribed.end())
    return;
  // Only registrations of connections gone already can be waiting.
  for (auto& rp : i->second.waiting)
    rp.deliver(false);
  self->state.subscribed.erase(i);
  CAF_LOG_DEBUG("unsubscribe" << CAF_ARG(user));
  self->send(self->state.subscriber, unsub_atom::value,
             std::vector<std::string>{user_channel(self, user)});
}

// A broken pub/sub connection loses every subscription until the subscriber
// has confirmed them again: until then a registration asks it.
void on_pubsub_state(cluster_ptr self, bool up) {
  self->state.st->pubsub_up.store(up ? 1 : 0, std::memory_order_relaxed);
  CAF_LOG_INFO("pub/sub connection" << CAF_ARG2("redis", up ? "up" : "down"));
  if (!up)
    for (auto& [user, entry] : self->state.subscribed)
      entry.confirmed = false;
}

bool is_integer(const redis_reply& reply) {
  return reply.type == redis_reply::kind::integer;
}

void dropped(cluster_ptr self, user_id user, caf::typed_response_promise<bool>& rp,
             const std::string& why) {
  // Debug only: an outage fails every publish, and the redis actor logs the
  // outage itself; hubnode_messages_dropped_total counts these.
  CAF_LOG_DEBUG("publish failed, remote recipients lose this message"
                << CAF_ARG(user) << CAF_ARG2("reason", why));
  self->state.st->dropped(drop_reason::redis_down);
  rp.deliver(false);
}

// Online elsewhere = another node's subscriber got the message (this node is
// one of the receivers only while it has a local connection of the user, and
// then the hub knows the answer already) or presence has the user.
void answer(cluster_ptr self, user_id user, int self_receiver,
            caf::typed_response_promise<bool>& rp, const redis_replies& replies) {
  if (replies.size() < 2 || !is_integer(replies[0])) {
    dropped(self, user, rp, replies.empty() ? "no reply" : replies[0].str);
    return;
  }
  stats::bump(self->state.st->messages_remote);
  auto receivers = replies[0].integer - self_receiver;
  auto member = is_integer(replies[1]) && replies[1].integer == 1;
  rp.deliver(receivers > 0 || member);
}

// The message to the user's channel, and whether the user is in P`online`.
caf::result<bool> publish(cluster_ptr self, user_id user, const payload& frame) {
  auto& st = self->state;
  auto rp = self->make_response_promise<bool>();
  // 1 while this node's subscriber is one of the receivers
  int self_receiver = st.subscribed.count(user) > 0 ? 1 : 0;
  st.publishes->exchange(
      self,
      {{"PUBLISH", user_channel(self, user),
        cluster_wire::encode(st.cfg.node_id, *frame)},
       {"SISMEMBER", st.keys.online, std::to_string(user)}},
      [self, user, self_receiver, rp](const redis_replies& replies) mutable {
        answer(self, user, self_receiver, rp, replies);
      },
      [self, user, rp](const caf::error& err) mutable {
        dropped(self, user, rp, to_string(err));
      });
  return rp;
}

// {"userId":"ID","online":BOOL,"node":"NODEID","ts":MS} on P`presence`.
void on_presence_event(cluster_ptr self, const std::string& message) {
  namespace json = boost::json;
  json::error_code ec;
  auto value = json::parse(message, ec);
  auto object = ec ? nullptr : value.if_object();
  auto user_text = object ? object->if_contains("userId") : nullptr;
  auto online = object ? object->if_contains("online") : nullptr;
  auto user = user_text && user_text->is_string()
                  ? parse_user_id(std::string_view{user_text->get_string()})
                  : std::nullopt;
  if (!user || !online || !online->is_bool()) {
    CAF_LOG_WARNING("malformed presence event dropped" << CAF_ARG(message));
    return;
  }
  self->send(self->state.presence, event_atom::value, *user, online->get_bool());
}

void on_user_message(cluster_ptr self, std::string_view user_text,
                     const std::string& message) {
  auto user = parse_user_id(user_text);
  std::string_view origin;
  std::string_view frame;
  if (!user || !cluster_wire::decode(message, origin, frame)) {
    CAF_LOG_WARNING("malformed user message dropped" << CAF_ARG2("user", user_text));
    return;
  }
  // The origin delivered to its own connections when it routed the message.
  if (origin == self->state.cfg.node_id)
    return;
  self->send(self->state.hub, remote_atom::value, *user,
             make_payload(std::string{frame}));
}

void on_remote(cluster_ptr self, const std::string& channel, const std::string& message) {
  auto& st = self->state;
  if (channel == st.keys.channel)
    on_presence_event(self, message);
  else if (auto user = st.keys.delivery_user(channel))
    on_user_message(self, *user, message);
  else
    CAF_LOG_WARNING("message on an unknown channel dropped" << CAF_ARG(channel));
}

cluster_actor::behavior_type cluster(cluster_ptr self, redis_settings cfg, hub_actor hub,
                                     presence_actor presence, redis_actor redis,
                                     stats* st, subscriber_factory make_subscriber) {
  auto& s = self->state;
  s.keys = redis_keys{cfg.key_prefix};
  s.cfg = std::move(cfg);
  s.hub = std::move(hub);
  s.presence = std::move(presence);
  s.publishes.emplace(std::move(redis), redis_timeout(s.cfg), max_pipeline);
  s.st = st;
  // Subscribed from the start, so that pub/sub (and /readyz) is up only once
  // P`presence` is: a watcher of a ready node hears every later transition.
  s.subscriber = make_subscriber(caf::actor_cast<caf::actor>(self),
                                 std::vector<std::string>{s.keys.channel});
  // The subscriber lives as long as its sink.
  self->attach_functor([sub = s.subscriber] {
    caf::anon_send_exit(sub, caf::exit_reason::user_shutdown);
  });
  CAF_LOG_INFO("cluster mode" << CAF_ARG2("node", s.cfg.node_id)
                              << CAF_ARG2("prefix", s.cfg.key_prefix));
  return {
      [self](subscribe_atom, user_id user) { return subscribe(self, user); },
      [self](unsub_atom, user_id user) { unsubscribe(self, user); },
      [self](publish_atom, user_id user, const payload& frame) {
        return publish(self, user, frame);
      },
      [self](remote_atom, const std::string& channel, const std::string& message) {
        on_remote(self, channel, message);
      },
      // The subscriber subscribes again by itself once Redis is back.
      [self](redis_state_atom, bool up) { on_pubsub_state(self, up); },
  };
}

} // namespace

cluster_actor spawn_cluster(caf::actor_system& sys, redis_settings cfg, hub_actor hub,
                            presence_actor presence, redis_actor redis, stats& st,
                            subscriber_factory make_subscriber) {
  return sys.spawn(cluster, std::move(cfg), std::move(hub), std::move(presence),
                   std::move(redis), &st, std::move(make_subscriber));
}

cluster_actor spawn_cluster(caf::actor_system& sys, redis_settings cfg, hub_actor hub,
                            presence_actor presence, redis_actor redis, stats& st) {
  auto make_subscriber = [&sys, cfg, &st](caf::actor sink,
                                          std::vector<std::string> channels) {
    return spawn_subscriber(sys, cfg, st, std::move(sink), std::move(channels));
  };
  return spawn_cluster(sys, std::move(cfg), std::move(hub), std::move(presence),
                       std::move(redis), st, std::move(make_subscriber));
}

} // namespace hubnode
