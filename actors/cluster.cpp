#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "redis"

#include "actors/cluster.hpp"

#include "actors/redis_batch.hpp"
#include "actors/redis_subscriber.hpp"
#include "src/base/user_id.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/stream_scripts.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <optional>
#include <unordered_map>
#include <vector>

#include "caf/send.hpp"
#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

// Commands per pipeline: enough to amortise the round trip (two per
// publish); small enough that one pipeline stays well inside
// redis.command-timeout.
constexpr std::size_t max_pipeline = 512;

// This node's subscription to the pub/sub channel of one user with a local
// connection or of one channel with a local subscriber.
struct pubsub_subscription {
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
  hub_settings streams; // history sizes, ttl, and the incarnation for epochs
  hub_actor hub;
  cluster_channels_actor channels;
  presence_actor presence;
  subscriber_actor subscriber;
  stats* st = nullptr;
  redis_keys keys{""};
  // The pub/sub channels this node is subscribed to: of users with a local
  // connection, of channels with a local subscriber. The hub and the
  // channels actor say when; this map keeps it idempotent.
  std::unordered_map<std::string, pubsub_subscription> subscribed;
  std::uint64_t attempts = 0;
  // Epochs this node gives new streams: unique across nodes and restarts.
  std::string epoch_prefix;
  std::uint64_t last_epoch = 0;
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

// The subscriber's answer to one attempt; one for an earlier subscription of
// the channel (unsubscribed since) is old news.
void confirmed(cluster_ptr self, const std::string& channel, std::uint64_t attempt,
               bool ok) {
  auto i = self->state.subscribed.find(channel);
  if (i == self->state.subscribed.end() || i->second.attempt != attempt)
    return;
  auto waiting = std::move(i->second.waiting);
  i->second.waiting.clear();
  i->second.confirmed = ok;
  for (auto& rp : waiting)
    rp.deliver(ok);
}

void ask_subscriber(cluster_ptr self, const std::string& channel,
                    pubsub_subscription& entry) {
  auto attempt = entry.attempt = ++self->state.attempts;
  self->request(self->state.subscriber, redis_timeout(self->state.cfg),
                subscribe_atom::value, std::vector<std::string>{channel})
      .then([self, channel, attempt](bool ok) { confirmed(self, channel, attempt, ok); },
            [self, channel, attempt](caf::error& err) {
              CAF_LOG_WARNING("subscriber did not answer" << CAF_ARG(channel)
                                                          << CAF_ARG(err));
              confirmed(self, channel, attempt, false);
            });
}

// Answered once the subscriber confirmed the channel, so that the hub holds
// the welcome (the channels actor its `subscribed`) until an entry published
// after it reaches this node. A failed subscription is asked for again by
// the next registration; the subscriber subscribes the channel anyway once
// Redis is back.
caf::result<bool> subscribe(cluster_ptr self, const std::string& channel) {
  auto& entry = self->state.subscribed[channel];
  if (entry.confirmed)
    return true;
  auto rp = self->make_response_promise<bool>();
  entry.waiting.push_back(rp);
  if (entry.waiting.size() == 1) {
    CAF_LOG_DEBUG("subscribe" << CAF_ARG(channel));
    ask_subscriber(self, channel, entry);
  }
  return rp;
}

void unsubscribe(cluster_ptr self, const std::string& channel) {
  auto i = self->state.subscribed.find(channel);
  if (i == self->state.subscribed.end())
    return;
  // Only registrations of connections gone already can be waiting.
  for (auto& rp : i->second.waiting)
    rp.deliver(false);
  self->state.subscribed.erase(i);
  CAF_LOG_DEBUG("unsubscribe" << CAF_ARG(channel));
  self->send(self->state.subscriber, unsub_atom::value,
             std::vector<std::string>{channel});
}

// A broken pub/sub connection loses every subscription until the subscriber
// has confirmed them again: until then a registration asks it.
void on_pubsub_state(cluster_ptr self, bool up) {
  self->state.st->pubsub_up.store(up ? 1 : 0, std::memory_order_relaxed);
  CAF_LOG_INFO("pub/sub connection" << CAF_ARG2("redis", up ? "up" : "down"));
  if (!up) {
    for (auto& [channel, entry] : self->state.subscribed)
      entry.confirmed = false;
    return;
  }
  // Every channel is subscribed again, but what was published meanwhile
  // never came: the streams' readers catch up from Redis.
  self->send(self->state.hub, resync_atom::value);
  if (self->state.channels)
    self->send(self->state.channels, resync_atom::value);
}

bool is_integer(const redis_reply& reply) {
  return reply.type == redis_reply::kind::integer;
}

std::string new_epoch(cluster_ptr self) {
  return fmt::format("{}{}", self->state.epoch_prefix, ++self->state.last_epoch);
}

std::chrono::milliseconds ttl(cluster_ptr self) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      self->state.streams.history_ttl);
}

redis_command append(cluster_ptr self, const std::string& stream, const payload& frame,
                     std::size_t size, const std::string& pubsub) {
  return stream_scripts::append(stream, *frame, new_epoch(self), size, ttl(self), pubsub);
}

void dropped(cluster_ptr self, user_id user, caf::typed_response_promise<bool, bool>& rp,
             const std::string& why) {
  // Debug only: an outage fails every publish, and the redis actor logs the
  // outage itself; hubnode_messages_dropped_total counts these.
  CAF_LOG_DEBUG("append failed, remote recipients lose this message"
                << CAF_ARG(user) << CAF_ARG2("reason", why));
  self->state.st->dropped(drop_reason::redis_down);
  rp.deliver(false, false);
}

// Online elsewhere = another node's subscriber got the message (this node is
// one of the receivers only while it has a local connection of the user, and
// then the hub knows the answer already) or presence has the user.
void answer(cluster_ptr self, user_id user, int self_receiver,
            caf::typed_response_promise<bool, bool>& rp, const redis_replies& replies) {
  auto done =
      replies.size() < 2 ? std::nullopt : stream_scripts::parse_appended(replies[0]);
  if (!done) {
    dropped(self, user, rp, replies.empty() ? "no reply" : replies[0].str);
    return;
  }
  stats::bump(self->state.st->messages_remote);
  auto receivers = done->receivers - self_receiver;
  auto member = is_integer(replies[1]) && replies[1].integer == 1;
  rp.deliver(true, receivers > 0 || member);
}

// The message appended to the user's stream and published, and whether the
// user is in P`online`.
caf::result<bool, bool> publish(cluster_ptr self, user_id user, const payload& frame) {
  auto& st = self->state;
  auto rp = self->make_response_promise<bool, bool>();
  auto channel = st.keys.delivery(user);
  // 1 while this node's subscriber is one of the receivers
  int self_receiver = st.subscribed.count(channel) > 0 ? 1 : 0;
  st.publishes->exchange(
      self,
      {append(self, st.keys.user_stream(user), frame, st.streams.history_user_size,
              channel),
       {"SISMEMBER", st.keys.online, std::to_string(user)}},
      [self, user, self_receiver, rp](const redis_replies& replies) mutable {
        answer(self, user, self_receiver, rp, replies);
      },
      [self, user, rp](const caf::error& err) mutable {
        dropped(self, user, rp, to_string(err));
      });
  return rp;
}

caf::error redis_down() {
  return caf::make_error(caf::sec::request_receiver_down);
}

caf::result<std::uint64_t> publish_on(cluster_ptr self, const std::string& channel,
                                      const payload& frame) {
  auto& st = self->state;
  auto rp = self->make_response_promise<std::uint64_t>();
  st.publishes->exchange(
      self,
      {append(self, st.keys.channel_stream(channel), frame, st.streams.history_size,
              st.keys.publications(channel))},
      [rp](const redis_replies& replies) mutable {
        auto done =
            replies.empty() ? std::nullopt : stream_scripts::parse_appended(replies[0]);
        if (done)
          rp.deliver(done->offset);
        else
          rp.deliver(redis_down());
      },
      [rp](const caf::error&) mutable { rp.deliver(redis_down()); });
  return rp;
}

caf::result<stream_read> read(cluster_ptr self, const std::string& stream,
                              const read_request& req) {
  auto rp = self->make_response_promise<stream_read>();
  self->state.publishes->exchange(
      self,
      {stream_scripts::read(stream, new_epoch(self), ttl(self), req.after, req.count)},
      [rp](const redis_replies& replies) mutable {
        auto done =
            replies.empty() ? std::nullopt : stream_scripts::parse_read(replies[0]);
        if (done)
          rp.deliver(std::move(*done));
        else
          rp.deliver(redis_down());
      },
      [rp](const caf::error&) mutable { rp.deliver(redis_down()); });
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

// "<epoch>\n<offset>\n<frame>" on P`user:ID` or P`chan:NAME`, from the
// append script of whichever node routed it, this one included.
void on_remote(cluster_ptr self, const std::string& channel, const std::string& message) {
  auto& st = self->state;
  if (channel == st.keys.channel)
    return on_presence_event(self, message);
  auto entry = stream_scripts::parse_published(message);
  auto user_text = st.keys.delivery_user(channel);
  auto user = user_text ? parse_user_id(*user_text) : std::nullopt;
  auto name = st.keys.channel_of(channel);
  if (!entry || (!user && !name)) {
    CAF_LOG_WARNING("malformed message dropped" << CAF_ARG(channel));
    return;
  }
  if (user)
    self->send(st.hub, remote_atom::value, *user, std::string{entry->epoch},
               std::move(entry->entry));
  else if (st.channels)
    self->send(st.channels, remote_atom::value, std::string{*name},
               std::string{entry->epoch}, std::move(entry->entry));
}

cluster_actor::behavior_type cluster(cluster_ptr self, redis_settings cfg,
                                     hub_settings streams, hub_actor hub,
                                     presence_actor presence, redis_actor redis,
                                     stats* st, subscriber_factory make_subscriber) {
  auto& s = self->state;
  s.keys = redis_keys{cfg.key_prefix};
  s.cfg = std::move(cfg);
  s.streams = std::move(streams);
  s.epoch_prefix = fmt::format("{}-{}-", s.cfg.node_id, s.streams.incarnation);
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
      [self](subscribe_atom, user_id user) {
        return subscribe(self, self->state.keys.delivery(user));
      },
      [self](unsub_atom, user_id user) {
        unsubscribe(self, self->state.keys.delivery(user));
      },
      [self](publish_atom, user_id user, const payload& frame) {
        return publish(self, user, frame);
      },
      [self](subscribe_atom, const std::string& channel) {
        return subscribe(self, self->state.keys.publications(channel));
      },
      [self](unsub_atom, const std::string& channel) {
        unsubscribe(self, self->state.keys.publications(channel));
      },
      [self](publish_atom, const std::string& channel, const payload& frame) {
        return publish_on(self, channel, frame);
      },
      [self](read_atom, user_id user, const read_request& req) {
        return read(self, self->state.keys.user_stream(user), req);
      },
      [self](read_atom, const std::string& channel, const read_request& req) {
        return read(self, self->state.keys.channel_stream(channel), req);
      },
      [self](feed_atom, cluster_channels_actor channels) {
        self->state.channels = std::move(channels);
      },
      [self](remote_atom, const std::string& channel, const std::string& message) {
        on_remote(self, channel, message);
      },
      // The subscriber subscribes again by itself once Redis is back.
      [self](redis_state_atom, bool up) { on_pubsub_state(self, up); },
  };
}

} // namespace

cluster_actor spawn_cluster(caf::actor_system& sys, redis_settings cfg,
                            hub_settings streams, hub_actor hub, presence_actor presence,
                            redis_actor redis, stats& st,
                            subscriber_factory make_subscriber) {
  return sys.spawn(cluster, std::move(cfg), std::move(streams), std::move(hub),
                   std::move(presence), std::move(redis), &st,
                   std::move(make_subscriber));
}

cluster_actor spawn_cluster(caf::actor_system& sys, redis_settings cfg,
                            hub_settings streams, hub_actor hub, presence_actor presence,
                            redis_actor redis, stats& st) {
  auto make_subscriber = [&sys, cfg, &st](caf::actor sink,
                                          std::vector<std::string> channels) {
    return spawn_subscriber(sys, cfg, st, std::move(sink), std::move(channels));
  };
  return spawn_cluster(sys, std::move(cfg), std::move(streams), std::move(hub),
                       std::move(presence), std::move(redis), st,
                       std::move(make_subscriber));
}

} // namespace hubnode
