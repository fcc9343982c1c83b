#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "hub"

#include "actors/hub.hpp"

#include "actors/streams/stream_feed.hpp"
#include "actors/streams/stream_store.hpp"
#include "src/base/clock.hpp"
#include "src/wire/protocol.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

struct registration {
  user_id user;
  std::string id;
};

struct hub_state {
  hub_settings cfg;
  presence_actor presence;
  // Cluster mode only: subscriptions and publishing for other nodes.
  cluster_actor cluster;
  stats* st = nullptr;
  std::unordered_map<user_id, std::vector<connection_actor>> by_user;
  // Keyed by address because that is all a DOWN message carries.
  std::unordered_map<caf::actor_addr, registration> by_actor;
  std::uint64_t last_connection = 0;
  // A message id is this and a count: NODE-INCARNATION-mN.
  std::string message_prefix;
  std::uint64_t last_message = 0;
  // Standalone mode only: the user streams of SPEC section 8. Appending and
  // delivering is one turn of this actor, and so is registering and
  // replaying, so a recovery cannot miss or repeat a live message.
  std::optional<user_streams> streams;
  // Cluster mode only: the streams live in Redis; these are the local
  // connections of each user as readers of its stream's feed.
  std::unordered_map<user_id, stream_feed> feeds;
  bool shutting_down = false;
  std::vector<caf::typed_response_promise<bool>> drained;

  static const char* name;
};

const char* hub_state::name = "hub";

using hub_ptr = hub_actor::stateful_pointer<hub_state>;
using admission_result = caf::result<admission, welcome_info>;

template <class... Ts>
void broadcast(hub_ptr self, const Ts&... xs) {
  for (auto& [user, conns] : self->state.by_user)
    for (auto& conn : conns)
      self->send(conn, xs...);
}

std::size_t local_connections(hub_ptr self, user_id user) {
  auto i = self->state.by_user.find(user);
  return i == self->state.by_user.end() ? 0 : i->second.size();
}

admission_result refuse(hub_ptr self, user_id user, admission why, rejection label) {
  CAF_LOG_INFO("register refused" << CAF_ARG(user)
                                  << CAF_ARG2("reason", to_label(label)));
  self->state.st->rejected(label);
  return {why, welcome_info{}};
}

void deliver_entry(hub_ptr self, const connection_actor& conn, const payload& frame) {
  self->send(conn, deliver_atom::value, frame);
  stats::bump(self->state.st->messages_delivered);
}

// What a user's feed calls for each entry a connection gets.
auto deliver_to(hub_ptr self) {
  return
      [self](const connection_actor& c, const payload& f) { deliver_entry(self, c, f); };
}

// A user's connection goes on after entries it cannot get: the offsets
// show the client the gap, and a reconnect with `recover` tells it more.
void skip_lost(const connection_actor&) {}

void opened(hub_ptr self, user_id user, stream_feed::ticket held,
            const recovery_request& recover, const stream_read& read,
            welcome_info& info) {
  auto i = self->state.feeds.find(user);
  if (i == self->state.feeds.end())
    return;
  info.position = read.top;
  std::optional<std::uint64_t> start = read.top.offset;
  if (recover) {
    info.recovered = recovers(read, *recover, self->state.cfg.recover_limit);
    self->state.st->recovery(*info.recovered);
    if (*info.recovered)
      start = recover->offset;
  }
  i->second.settle(held, read, start, deliver_to(self), skip_lost);
}

// Redis is down: no position, nothing recovered, and the connection takes
// the feed from whatever comes next.
void opened_without_position(hub_ptr self, user_id user, stream_feed::ticket held,
                             const recovery_request& recover, welcome_info& info) {
  if (recover) {
    info.recovered = false;
    self->state.st->recovery(false);
  }
  auto i = self->state.feeds.find(user);
  if (i != self->state.feeds.end())
    i->second.settle_unpositioned(held, deliver_to(self));
}

// Cluster mode: the stream's position (and the replay) is read once this
// node hears the user's channel, so that every later entry comes by the
// feed; the replay and what the feed brought meanwhile go to the connection
// before the answer, which it turns into its welcome.
void open_cluster_stream(hub_ptr self, user_id user, stream_feed::ticket held,
                         recovery_request recover,
                         caf::typed_response_promise<admission, welcome_info> rp,
                         welcome_info info) {
  read_request req;
  if (recover) {
    req.after = recover->offset;
    req.count = self->state.cfg.recover_limit;
  }
  self->request(self->state.cluster, caf::infinite, read_atom::value, user, req)
      .then(
          [self, user, held, recover, rp, info](const stream_read& read) mutable {
            opened(self, user, held, recover, read, info);
            rp.deliver(admission::admitted, std::move(info));
          },
          [self, user, held, recover, rp, info](caf::error&) mutable {
            opened_without_position(self, user, held, recover, info);
            rp.deliver(admission::admitted, std::move(info));
          });
}

// In cluster mode the answer waits for the cluster's subscription to the
// user's channel: the connection sends its welcome on this answer (SPEC
// section 3, "Timing"), and a message sent to the user after the welcome
// must reach it from every node. Without Redis the cluster answers at once
// (false), and the welcome goes out all the same: local delivery works on.
admission_result admitted_when_subscribed(hub_ptr self, user_id user,
                                          const connection_actor& conn,
                                          recovery_request recover, welcome_info info) {
  auto rp = self->make_response_promise<admission, welcome_info>();
  auto held = self->state.feeds.try_emplace(user, false).first->second.join(conn);
  self->request(self->state.cluster, caf::infinite, subscribe_atom::value, user)
      .then(
          [self, user, held, recover, rp, info](bool subscribed) mutable {
            if (!subscribed)
              CAF_LOG_DEBUG("welcome without a subscription"
                            << CAF_ARG2("connection", info.connection_id));
            open_cluster_stream(self, user, held, std::move(recover), rp,
                                std::move(info));
          },
          [self, user, held, recover, rp, info](caf::error& err) mutable {
            CAF_LOG_WARNING("cluster did not answer" << CAF_ARG(err));
            opened_without_position(self, user, held, recover, info);
            rp.deliver(admission::admitted, std::move(info));
          });
  return rp;
}

// The welcome's part of the user stream, and the replay of what the client
// missed. The replay is sent before the admission answer: the connection
// holds deliveries until its welcome is out, in the order they came, so the
// replay goes out between the welcome and every live message, which this
// actor can only route after this turn.
void open_stream(hub_ptr self, user_id user, const connection_actor& conn,
                 const recovery_request& recover, welcome_info& info) {
  auto& streams = *self->state.streams;
  auto now = self->clock().now();
  info.position = streams.open(user, now);
  if (!recover)
    return;
  auto missed = streams.since(user, *recover, now);
  info.recovered = missed.has_value();
  self->state.st->recovery(*info.recovered);
  if (!missed)
    return;
  for (auto& frame : *missed)
    self->send(conn, deliver_atom::value, frame);
  stats::bump(self->state.st->messages_delivered, missed->size());
}

// Registration comes before the welcome (the connection sends it only once
// admitted), so whatever is routed to the user after the welcome finds it here.
admission_result admit(hub_ptr self, user_id user, const connection_actor& conn,
                       const recovery_request& recover) {
  auto& st = self->state;
  if (st.shutting_down || st.by_actor.size() >= st.cfg.max_connections)
    return refuse(self, user, admission::over_capacity, rejection::over_capacity);
  if (local_connections(self, user) >= st.cfg.max_connections_per_user)
    return refuse(self, user, admission::too_many_connections,
                  rejection::too_many_connections);
  welcome_info info;
  info.connection_id = fmt::format("{}-c{}", st.cfg.node_id, ++st.last_connection);
  auto& conns = st.by_user[user];
  if (conns.empty())
    stats::add(st.st->users_online_local, 1);
  conns.push_back(conn);
  st.by_actor.emplace(conn.address(), registration{user, info.connection_id});
  self->monitor(conn);
  stats::add(st.st->connections_active, 1);
  stats::bump(st.st->connections_opened);
  self->send(st.presence, connected_atom::value, user);
  CAF_LOG_DEBUG("register" << CAF_ARG2("actor", conn->id()) << CAF_ARG(user)
                           << CAF_ARG2("connection", info.connection_id));
  if (st.cluster)
    return admitted_when_subscribed(self, user, conn, recover, std::move(info));
  open_stream(self, user, conn, recover, info);
  return {admission::admitted, std::move(info)};
}

void forget_connection(hub_ptr self, user_id user, const caf::actor_addr& conn) {
  auto& by_user = self->state.by_user;
  auto i = by_user.find(user);
  auto& conns = i->second;
  conns.erase(std::remove(conns.begin(), conns.end(), conn), conns.end());
  if (!conns.empty())
    return;
  by_user.erase(i);
  stats::add(self->state.st->users_online_local, -1);
  if (self->state.cluster)
    self->send(self->state.cluster, unsub_atom::value, user);
}

void answer_drained(hub_ptr self) {
  CAF_LOG_INFO("all connections closed");
  for (auto& rp : self->state.drained)
    rp.deliver(true);
  self->state.drained.clear();
}

// A connection's DOWN is its unregistration: the actor is gone, however it ended.
void unregister(hub_ptr self, const caf::actor_addr& conn) {
  auto& st = self->state;
  auto i = st.by_actor.find(conn);
  if (i == st.by_actor.end())
    return;
  auto reg = std::move(i->second);
  st.by_actor.erase(i);
  forget_connection(self, reg.user, conn);
  if (!st.cluster)
    st.streams->close(reg.user, self->clock().now());
  else if (auto f = st.feeds.find(reg.user); f != st.feeds.end() && f->second.leave(conn))
    st.feeds.erase(f);
  stats::add(st.st->connections_active, -1);
  self->send(st.presence, disconn_atom::value, reg.user);
  CAF_LOG_DEBUG("unregister" << CAF_ARG2("actor", conn.id()) << CAF_ARG2("user", reg.user)
                             << CAF_ARG2("connection", reg.id));
  if (st.shutting_down && st.by_actor.empty())
    answer_drained(self);
}

// Local connections get the frame directly, never through Redis. Delivery
// never waits for presence or Redis, and the hub is one actor, so the
// deliveries to each recipient keep the order in which routes arrived; in
// cluster mode the publishes leave in that order too, and the one redis
// actor runs them in order.
std::size_t deliver_locally(hub_ptr self, user_id to, const payload& frame) {
  auto i = self->state.by_user.find(to);
  if (i == self->state.by_user.end())
    return 0;
  for (auto& conn : i->second)
    self->send(conn, deliver_atom::value, frame);
  stats::bump(self->state.st->messages_delivered, i->second.size());
  return i->second.size();
}

// The answers to one batch of routes, delivered together once the last is
// known: at once when this node knows every recipient, else when presence or
// the cluster has answered.
class batch_answers {
public:
  batch_answers(caf::typed_response_promise<routed_batch> promise, std::size_t size)
      : promise_(std::move(promise)), answers_(size), missing_(size) {}

  caf::typed_response_promise<routed_batch>& promise() { return promise_; }

  void answer(std::size_t i, std::string id, bool online) {
    answers_[i] = routed{std::move(id), online};
    if (--missing_ == 0)
      promise_.deliver(std::move(answers_));
  }

private:
  caf::typed_response_promise<routed_batch> promise_;
  routed_batch answers_;
  std::size_t missing_;
};

// Where the answer for one message of a batch goes.
struct answer_slot {
  std::shared_ptr<batch_answers> batch;
  std::size_t index;
  std::string id;

  void operator()(bool online) { batch->answer(index, std::move(id), online); }
};

// Presence also counts the grace period, which this hub no longer sees.
void ask_presence(hub_ptr self, user_id to, answer_slot slot) {
  self->request(self->state.presence, caf::infinite, online_atom::value, to)
      .then([slot](bool online) mutable { slot(online); },
            [slot](caf::error& err) mutable {
              CAF_LOG_WARNING("presence did not answer" << CAF_ARG(err));
              slot(false);
            });
}

// The cluster answers whether it stored the message (then every node, this
// one too, delivers it from its feed) and whether the user is online on
// another node (or in P`online`, which has the grace period). Not stored
// (Redis is down): local connections get it here, without an offset.
void publish(hub_ptr self, user_id to, payload frame, payload unstored, bool online_here,
             answer_slot slot) {
  self->request(self->state.cluster, caf::infinite, publish_atom::value, to,
                std::move(frame))
      .then(
          [self, to, unstored, online_here, slot](bool stored, bool online) mutable {
            if (!stored)
              deliver_locally(self, to, unstored);
            slot(online_here || online);
          },
          [self, to, unstored, online_here, slot](caf::error& err) mutable {
            CAF_LOG_WARNING("cluster did not answer" << CAF_ARG(err));
            deliver_locally(self, to, unstored);
            slot(online_here);
          });
}

// Standalone: the message is an entry of its recipient's stream, kept also
// when the recipient has no connection.
void route_standalone(hub_ptr self, const std::string& from, const outgoing& message,
                      answer_slot slot, caf::actor_clock::time_point now) {
  auto frame = self->state.streams->append(message.to, now, [&](std::uint64_t offset) {
    return make_payload(protocol::message(slot.id, from, message.data, now_ms(), offset));
  });
  if (deliver_locally(self, message.to, frame) > 0)
    return slot(true);
  ask_presence(self, message.to, std::move(slot));
}

void route_one(hub_ptr self, const std::string& from, const outgoing& message,
               answer_slot slot, caf::actor_clock::time_point now) {
  auto& st = self->state;
  if (!st.cluster)
    return route_standalone(self, from, message, std::move(slot), now);
  auto local = st.by_user.count(message.to) > 0;
  auto ts = now_ms();
  // The append script writes the offset over the 0.
  auto frame = make_payload(protocol::message(slot.id, from, message.data, ts, 0));
  auto unstored = make_payload(protocol::message(slot.id, from, message.data, ts));
  publish(self, message.to, std::move(frame), std::move(unstored), local,
          std::move(slot));
}

// A connection routes what it read at once in one request: one message to
// and from the hub however many the client sent.
caf::result<routed_batch> route(hub_ptr self, const std::string& from,
                                const outgoing_batch& messages) {
  if (messages.empty())
    return routed_batch{};
  auto answers = std::make_shared<batch_answers>(
      self->make_response_promise<routed_batch>(), messages.size());
  auto now = self->clock().now();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    auto id = fmt::format("{}{}", self->state.message_prefix, ++self->state.last_message);
    route_one(self, from, messages[i], answer_slot{answers, i, std::move(id)}, now);
  }
  return answers->promise();
}

// The stream's read for a resync of a user's readers arrived (or failed).
void resynced(hub_ptr self, user_id user, stream_feed::ticket held,
              const stream_read* read) {
  auto i = self->state.feeds.find(user);
  if (i == self->state.feeds.end())
    return;
  auto deliver = deliver_to(self);
  if (read)
    i->second.settle(held, *read, std::nullopt, deliver, skip_lost);
  else
    i->second.settle_unpositioned(held, deliver);
}

void start_resync(hub_ptr self, user_id user, const stream_feed::resync& r) {
  self->request(self->state.cluster, caf::infinite, read_atom::value, user,
                read_request{r.after, self->state.cfg.recover_limit})
      .then([self, user, held = r.held](
                const stream_read& read) { resynced(self, user, held, &read); },
            [self, user, held = r.held](caf::error&) {
              resynced(self, user, held, nullptr);
            });
}

// An entry of a local user's stream from the feed: the connections get it in
// offset order, each once.
void remote(hub_ptr self, user_id to, const std::string& epoch,
            const stream_entry& entry) {
  auto i = self->state.feeds.find(to);
  if (i == self->state.feeds.end())
    return;
  auto deliver = deliver_to(self);
  if (auto r = i->second.push(epoch, entry, deliver, skip_lost))
    start_resync(self, to, *r);
}

// The pub/sub link is back: every local user's stream is read again from
// where its connections are.
void resync_all(hub_ptr self) {
  for (auto& [user, feed] : self->state.feeds)
    if (auto r = feed.hold_live())
      start_resync(self, user, *r);
}

// A stream's ttl counts from its last entry, so a quiet user's stream is
// read now and then while the user is connected here: that keeps it, and
// shows the connections' epoch when it was lost anyway.
void refresh(hub_ptr self) {
  for (auto& [user, feed] : self->state.feeds)
    self->request(self->state.cluster, caf::infinite, read_atom::value, user,
                  read_request{})
        .then(
            [self, user = user](const stream_read& read) {
              if (auto i = self->state.feeds.find(user); i != self->state.feeds.end())
                i->second.observe(read.top, skip_lost);
            },
            [](caf::error&) {});
  self->delayed_send(self, self->state.cfg.history_ttl / 3, heartbeat_atom::value);
}

// Sent once at start, before any connection; users already here (none, in
// the node's own wiring) are subscribed all the same.
void join_cluster(hub_ptr self, cluster_actor cluster) {
  CAF_LOG_INFO("cluster mode");
  self->state.cluster = std::move(cluster);
  self->delayed_send(self, self->state.cfg.history_ttl / 3, heartbeat_atom::value);
  for (auto& [user, conns] : self->state.by_user)
    self->request(self->state.cluster, caf::infinite, subscribe_atom::value, user)
        .then([](bool) {}, [](caf::error&) {});
}

caf::result<bool> shutdown(hub_ptr self) {
  auto& st = self->state;
  CAF_LOG_INFO("shutdown" << CAF_ARG2("connections", st.by_actor.size()));
  st.shutting_down = true;
  broadcast(self, shutdown_atom::value);
  if (st.by_actor.empty())
    return true;
  auto rp = self->make_response_promise<bool>();
  st.drained.push_back(rp);
  return rp;
}

hub_actor::behavior_type hub(hub_ptr self, hub_settings cfg, presence_actor presence,
                             stats* st) {
  self->state.cfg = std::move(cfg);
  self->state.message_prefix =
      fmt::format("{}-{}-m", self->state.cfg.node_id, self->state.cfg.incarnation);
  self->state.presence = std::move(presence);
  self->state.st = st;
  auto& c = self->state.cfg;
  self->state.streams.emplace(stream_settings{c.incarnation, c.history_user_size,
                                              c.history_ttl, c.recover_limit});
  self->set_down_handler([self](caf::down_msg& msg) { unregister(self, msg.source); });
  self->delayed_send(self, self->state.cfg.ping_interval, ping_atom::value);
  self->delayed_send(self, self->state.cfg.sweep_interval, sweep_atom::value);
  return {
      [self](register_atom, user_id user, const connection_actor& conn,
             const recovery_request& recover) {
        return admit(self, user, conn, recover);
      },
      [self](route_atom, const std::string& from, const outgoing_batch& messages) {
        return route(self, from, messages);
      },
      [self](ping_atom) {
        broadcast(self, ping_atom::value);
        self->delayed_send(self, self->state.cfg.ping_interval, ping_atom::value);
      },
      [self](sweep_atom) {
        stats::bump(self->state.st->sweeps);
        broadcast(self, sweep_atom::value);
        self->state.streams->expire(self->clock().now());
        self->delayed_send(self, self->state.cfg.sweep_interval, sweep_atom::value);
      },
      [self](shutdown_atom) { return shutdown(self); },
      [self](cluster_atom, const cluster_actor& cluster) { join_cluster(self, cluster); },
      [self](remote_atom, user_id to, const std::string& epoch,
             const stream_entry& entry) { remote(self, to, epoch, entry); },
      [self](resync_atom) { resync_all(self); },
      [self](heartbeat_atom) { refresh(self); },
  };
}

} // namespace

hub_actor spawn_hub(caf::actor_system& sys, hub_settings cfg, presence_actor presence,
                    stats& st) {
  return sys.spawn(hub, std::move(cfg), std::move(presence), &st);
}

} // namespace hubnode
