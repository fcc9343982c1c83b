#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "conn"

#include "actors/connection.hpp"

#include "src/base/close_code.hpp"
#include "src/wire/channel_name.hpp"
#include "src/wire/protocol.hpp"

#include <algorithm>
#include <optional>

#include "caf/actor_cast.hpp"
#include "caf/skip.hpp"
#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

using time_point = caf::actor_clock::time_point;

struct connection_state {
  connection_settings_ptr cfg;
  hub_actor hub;
  presence_actor presence;
  channels_actor channels;
  channel_grants grants;
  // The channels this connection is subscribed to; the channels actor has
  // the subscribers themselves. A handful of short names at most, so a vector.
  std::vector<std::string> subscriptions;
  stats* st = nullptr;
  transport_ptr socket;
  user_id user = 0;
  std::string remote;
  std::string id;
  // Frames not yet handed to the socket. Handed over by a flush message to
  // itself, behind the messages already in the mailbox, so that the frames
  // one turn of the actor queues (a burst of deliveries and acks) leave in
  // one write: one send, one segment for the client to read, instead of one
  // each. Closed loop, 1,000 connections: 7.5 instead of 9 us of node CPU
  // per message. A vector, not a deque: an empty deque still allocates over
  // 500 bytes, and most connections are idle.
  std::vector<payload> queue;
  std::uint64_t queued_bytes = 0; // of `queue`; the socket counts the rest
  bool flush_due = false;
  time_point last_activity;
  double tokens = 0;
  time_point refilled;
  // When the first and the latest rate_limited answer of the current flood
  // went out.
  std::optional<time_point> flood_since;
  time_point last_limited;
  // When the token this connection was admitted with expires, if it does.
  std::optional<time_point> expires_at;
  // Set by the one close of this connection; nothing counts or closes twice.
  bool done = false;

  static const char* name;
};

const char* connection_state::name = "connection";

using connection_ptr = connection_actor::stateful_pointer<connection_state>;

connection_actor handle_of(connection_ptr self) {
  return caf::actor_cast<connection_actor>(self);
}

// -- ending -------------------------------------------------------------------

void finish(connection_ptr self, close_reason why) {
  auto& st = self->state;
  if (st.done)
    return;
  st.done = true;
  st.st->closed(why);
  CAF_LOG_DEBUG("exit" << CAF_ARG2("actor", self->id()) << CAF_ARG2("user", st.user)
                       << CAF_ARG2("connection", st.id) << CAF_ARG2("remote", st.remote)
                       << CAF_ARG2("reason", to_label(why)));
  self->quit();
}

void flush(connection_ptr self);

void close(connection_ptr self, std::uint16_t code, close_reason why) {
  auto& st = self->state;
  if (st.done)
    return;
  flush(self); // what was queued before the close goes out before it
  CAF_LOG_DEBUG("close" << CAF_ARG2("actor", self->id()) << CAF_ARG2("user", st.user)
                        << CAF_ARG(code) << CAF_ARG2("reason", to_label(why)));
  st.socket->close(code);
  finish(self, why);
}

// A rejected connection was never counted as opened, so it is not counted as
// closed either.
void reject(connection_ptr self, admission why) {
  CAF_LOG_DEBUG("rejected, exit" << CAF_ARG2("actor", self->id())
                                 << CAF_ARG2("user", self->state.user)
                                 << CAF_ARG2("admission", static_cast<int>(why)));
  self->state.socket->reject(why);
  self->quit();
}

// -- the send queue -----------------------------------------------------------

void flush(connection_ptr self) {
  auto& st = self->state;
  if (st.queue.empty())
    return;
  std::vector<payload> frames;
  frames.swap(st.queue);
  st.queued_bytes = 0;
  st.socket->write(std::move(frames));
}

// The limit counts every byte the client has not yet been sent: queued
// here, or handed to the socket and not yet written.
void enqueue(connection_ptr self, payload frame) {
  auto& st = self->state;
  auto pending = st.socket->unsent_bytes() + st.queued_bytes + frame->size();
  st.st->queue_bytes_seen(static_cast<std::int64_t>(pending));
  if (pending > st.cfg->send_queue_limit) {
    // The frame that crosses the limit is dropped, not queued: the close
    // flushes what came before it.
    st.st->dropped(drop_reason::slow_consumer);
    return close(self, close_code::policy, close_reason::slow_consumer);
  }
  st.queued_bytes += frame->size();
  st.queue.push_back(std::move(frame));
  if (!st.flush_due) {
    st.flush_due = true;
    self->send(self, flush_atom::value);
  }
}

void on_flush(connection_ptr self) {
  self->state.flush_due = false;
  flush(self);
}

void enqueue(connection_ptr self, std::string text) {
  enqueue(self, make_payload(std::move(text)));
}

// -- liveness -----------------------------------------------------------------

void sweep(connection_ptr self) {
  auto& st = self->state;
  if (self->clock().now() - st.last_activity <= st.cfg->idle_timeout)
    return;
  stats::bump(st.st->stale_closed);
  close(self, close_code::going_away, close_reason::stale);
}

// A token's expiry is waited for in steps of at most this: a delayed
// message holds its receiver until it is due, so one for the token's whole
// lifetime would keep the actor of every connection closed before then.
constexpr caf::timespan expiry_step = std::chrono::minutes(1);

void arm_expiry(connection_ptr self, caf::timespan left) {
  self->delayed_send(handle_of(self), std::min(left, expiry_step), expire_atom::value);
}

// One step of the wait for the token's expiry. At the expiry itself (SPEC
// section 2, `exp` honoured) the identity no longer holds.
void expire(connection_ptr self) {
  auto& expires_at = self->state.expires_at;
  if (!expires_at)
    return;
  auto left = *expires_at - self->clock().now();
  if (left > caf::timespan{0})
    return arm_expiry(self, left);
  CAF_LOG_DEBUG("token expired" << CAF_ARG2("actor", self->id())
                                << CAF_ARG2("user", self->state.user));
  close(self, close_code::policy, close_reason::policy);
}

// -- rate limit: a token bucket of `rate_limit` per second, burst twice that --

bool take_token(connection_ptr self, time_point now) {
  auto& st = self->state;
  double rate = st.cfg->rate_limit;
  std::chrono::duration<double> elapsed = now - st.refilled;
  st.refilled = now;
  st.tokens = std::min(2 * rate, st.tokens + elapsed.count() * rate);
  if (st.tokens < 1)
    return false;
  st.tokens -= 1;
  return true;
}

// A flood ends only after a quiet second without a rate_limited answer, not
// at the next accepted frame: the bucket refills continuously, so a client
// sending at twice the rate gets every other frame through and would
// otherwise never count as still over the limit.
constexpr caf::timespan flood_quiet = std::chrono::seconds(1);

void rate_limited(connection_ptr self, const inbound& in, time_point now) {
  auto& st = self->state;
  st.st->dropped(drop_reason::rate_limited);
  if (!st.flood_since || now - st.last_limited >= flood_quiet)
    st.flood_since = now;
  st.last_limited = now;
  if (now - *st.flood_since >= st.cfg->flood_close_after)
    return close(self, close_code::policy, close_reason::policy);
  enqueue(self, protocol::error("rate_limited", "too many messages", in.ref, in.has_ref));
}

// -- requests -----------------------------------------------------------------

// Without an error handler a failed request would kill the connection; a hub
// or presence that cannot answer only happens while the node stops.
auto log_failure(const char* what) {
  return [what](caf::error& err) { CAF_LOG_WARNING(what << " failed" << CAF_ARG(err)); };
}

// The ref of each message routed, for its ack.
struct ack_ref {
  std::string ref;
  bool has_ref = false;
};

// The messages of one read, routed together once it has been served.
struct sends {
  outgoing_batch messages;
  std::vector<ack_ref> refs;
};

void add_send(sends& pending, inbound& in) {
  pending.messages.push_back(outgoing{in.to, std::move(in.data)});
  pending.refs.push_back(ack_ref{std::move(in.ref), in.has_ref});
}

void route_sends(connection_ptr self, sends& pending) {
  if (pending.messages.empty())
    return;
  self->request(self->state.hub, caf::infinite, route_atom::value,
                std::to_string(self->state.user), std::move(pending.messages))
      .then(
          [self, refs = std::move(pending.refs)](const routed_batch& answers) {
            for (std::size_t i = 0; i < answers.size() && i < refs.size(); ++i)
              enqueue(self, protocol::ack(refs[i].ref, refs[i].has_ref, answers[i].id,
                                          answers[i].online));
          },
          log_failure("route"));
}

void query_presence(connection_ptr self, user_list users) {
  self->request(self->state.presence, caf::infinite, query_atom::value, users)
      .then(
          [self, users](const user_list& online) {
            enqueue(self, protocol::presence(users, online));
          },
          log_failure("presence query"));
}

// A watch has no answer unless it is refused.
void watch_users(connection_ptr self, inbound& in) {
  self->request(self->state.presence, caf::infinite, watch_atom::value, handle_of(self),
                std::move(in.user_ids))
      .then(
          [self, ref = std::move(in.ref),
           has_ref = in.has_ref](const std::string& refused) {
            if (!refused.empty())
              enqueue(self, protocol::error("bad_request", refused, ref, has_ref));
          },
          log_failure("watch"));
}

// -- channels -----------------------------------------------------------------

bool subscribed_to(connection_ptr self, const std::string& channel) {
  auto& subs = self->state.subscriptions;
  return std::find(subs.begin(), subs.end(), channel) != subs.end();
}

channel_request channel_request_of(inbound& in) {
  return {std::move(in.channel), std::move(in.ref), in.has_ref, std::move(in.recover),
          std::move(in.data)};
}

void refuse(connection_ptr self, const inbound& in, const char* code,
            std::string_view message) {
  enqueue(self, protocol::error(code, message, in.ref, in.has_ref));
}

// The checks of SPEC section 8 in its order; the first that fails answers.
// Those left to pass once the subscription state is known come after.
bool allowed(connection_ptr self, const inbound& in) {
  if (channel_allowed(self->state.grants, in.channel))
    return true;
  refuse(self, in, "forbidden", "this token does not allow this channel");
  return false;
}

void subscribe(connection_ptr self, inbound& in) {
  auto& st = self->state;
  if (!allowed(self, in))
    return;
  if (subscribed_to(self, in.channel))
    return refuse(self, in, "already_subscribed", "already subscribed to this channel");
  if (st.subscriptions.size() >= st.cfg->max_channels)
    return refuse(self, in, "too_many_subscriptions",
                  "this connection holds as many subscriptions as it may");
  // Grown one at a time: a connection holds a handful, for long.
  st.subscriptions.reserve(st.subscriptions.size() + 1);
  st.subscriptions.push_back(in.channel);
  self->send(st.channels, subscribe_atom::value, handle_of(self), channel_request_of(in));
}

bool check_subscribed(connection_ptr self, const inbound& in) {
  if (!allowed(self, in))
    return false;
  if (subscribed_to(self, in.channel))
    return true;
  refuse(self, in, "not_subscribed", "not subscribed to this channel");
  return false;
}

void unsubscribe(connection_ptr self, inbound& in) {
  if (!check_subscribed(self, in))
    return;
  auto& subs = self->state.subscriptions;
  subs.erase(std::find(subs.begin(), subs.end(), in.channel));
  self->send(self->state.channels, unsub_atom::value, handle_of(self),
             channel_request_of(in));
}

void publish(connection_ptr self, inbound& in) {
  if (!check_subscribed(self, in))
    return;
  self->send(self->state.channels, publish_atom::value, handle_of(self), self->state.user,
             channel_request_of(in));
}

// The channels actor ended a subscription (Redis down at subscribe, or
// entries lost for good): `frame` says why.
void ended(connection_ptr self, const std::string& channel, const payload& frame) {
  auto& subs = self->state.subscriptions;
  subs.erase(std::remove(subs.begin(), subs.end(), channel), subs.end());
  enqueue(self, frame);
}

void serve(connection_ptr self, inbound& in, sends& pending) {
  auto& st = self->state;
  switch (in.type) {
  case inbound::kind::invalid:
    return enqueue(self,
                   protocol::error(in.error_code, in.error_message, in.ref, in.has_ref));
  case inbound::kind::send:
    return add_send(pending, in);
  case inbound::kind::presence:
    return query_presence(self, std::move(in.user_ids));
  case inbound::kind::watch:
    return watch_users(self, in);
  case inbound::kind::unwatch:
    return self->send(st.presence, unwatch_atom::value, handle_of(self),
                      std::move(in.user_ids));
  case inbound::kind::ping:
    return enqueue(self, protocol::pong(in.ref, in.has_ref));
  case inbound::kind::subscribe:
    return subscribe(self, in);
  case inbound::kind::unsubscribe:
    return unsubscribe(self, in);
  case inbound::kind::publish:
    return publish(self, in);
  }
}

void on_frame(connection_ptr self, inbound& in, sends& pending) {
  auto& st = self->state;
  auto now = self->clock().now();
  st.last_activity = now;
  stats::bump(st.st->messages_received);
  if (!take_token(self, now))
    return rate_limited(self, in, now);
  serve(self, in, pending);
}

// A close (a flood, a slow consumer) ends the turn: what the client sent
// after it is not served, as it would not be from the mailbox. The messages
// accepted before it are still routed.
void on_frames(connection_ptr self, inbound_batch& requests) {
  sends pending;
  for (auto& in : requests)
    if (!self->state.done)
      on_frame(self, in, pending);
  route_sends(self, pending);
}

// -- states -------------------------------------------------------------------
//
//  admitting --admitted--> upgrading --upgraded--> open --(close / closed)--> [exit]
//      |rejected               |closed, shutdown, stale
//      v                       v
//    [exit]                  [exit]
//
// close:     this actor decided to end (stale, slow consumer, flood, protocol
//            violation, shutdown): it closes the socket with a code.
// closed:    the session reports the socket gone (client close or error).
//
// admitting: waiting for the hub's answer; the socket is untouched, and every
//            message waits in the mailbox until there is an answer.
// upgrading: the socket finishes the WebSocket handshake; messages for the
//            client (and pings) wait, so that the welcome is its first frame.
// open:      frames flow both ways; frames for the client wait in the queue
//            until this actor's flush message hands them to the socket.

connection_actor::behavior_type admitting() {
  return {
      [](upgraded_atom) { return caf::skip; },
      [](frame_atom, const inbound_batch&) { return caf::skip; },
      [](activity_atom) { return caf::skip; },
      [](violation_atom, std::uint16_t) { return caf::skip; },
      [](closed_atom, close_reason) { return caf::skip; },
      [](deliver_atom, const payload&) { return caf::skip; },
      [](ping_atom) { return caf::skip; },
      [](sweep_atom) { return caf::skip; },
      [](shutdown_atom) { return caf::skip; },
      [](changed_atom, user_id, bool) { return caf::skip; },
      [](expire_atom) { return caf::skip; },
      [](flush_atom) { return caf::skip; },
      [](ended_atom, const std::string&, const payload&) { return caf::skip; },
  };
}

connection_actor::behavior_type open(connection_ptr self) {
  return {
      // A socket upgrades once; this state is reached by that one upgrade.
      [](upgraded_atom) {},
      [self](frame_atom, inbound_batch& requests) { on_frames(self, requests); },
      [self](activity_atom) { self->state.last_activity = self->clock().now(); },
      [self](violation_atom, std::uint16_t code) {
        close(self, code, close_reason::policy);
      },
      [self](closed_atom, close_reason why) { finish(self, why); },
      [self](deliver_atom, const payload& frame) { enqueue(self, frame); },
      [self](ping_atom) { self->state.socket->ping(); },
      [self](sweep_atom) { sweep(self); },
      [self](shutdown_atom) {
        close(self, close_code::going_away, close_reason::shutdown);
      },
      [self](changed_atom, user_id user, bool online) {
        enqueue(self, protocol::presence_changed(user, online));
      },
      [self](expire_atom) { expire(self); },
      [self](flush_atom) { on_flush(self); },
      [self](ended_atom, const std::string& channel, const payload& frame) {
        ended(self, channel, frame);
      },
  };
}

void on_upgraded(connection_ptr self) {
  auto& st = self->state;
  CAF_LOG_DEBUG("upgraded" << CAF_ARG2("actor", self->id()) << CAF_ARG2("user", st.user)
                           << CAF_ARG2("connection", st.id));
  self->become(open(self));
}

connection_actor::behavior_type upgrading(connection_ptr self) {
  return {
      [self](upgraded_atom) { on_upgraded(self); },
      [](frame_atom, const inbound_batch&) { return caf::skip; },
      [](activity_atom) { return caf::skip; },
      [](violation_atom, std::uint16_t) { return caf::skip; },
      [self](closed_atom, close_reason why) { finish(self, why); },
      [](deliver_atom, const payload&) { return caf::skip; },
      [](ping_atom) { return caf::skip; },
      [self](sweep_atom) { sweep(self); },
      [self](shutdown_atom) {
        close(self, close_code::going_away, close_reason::shutdown);
      },
      [](changed_atom, user_id, bool) { return caf::skip; },
      [self](expire_atom) { expire(self); },
      [](flush_atom) { return caf::skip; },
      [](ended_atom, const std::string&, const payload&) { return caf::skip; },
  };
}

void on_admission(connection_ptr self, admission verdict, welcome_info& info) {
  if (verdict != admission::admitted)
    return reject(self, verdict);
  auto& st = self->state;
  st.id = std::move(info.connection_id);
  CAF_LOG_DEBUG("admitted" << CAF_ARG2("actor", self->id()) << CAF_ARG2("user", st.user)
                           << CAF_ARG2("connection", st.id));
  // One send for the 101 and the welcome: in a reconnect storm the node's
  // sends are most of the cost of admitting a client.
  st.socket->accept(make_payload(
      protocol::welcome(st.user, st.id, st.cfg->node_id, info.position, info.recovered)));
  self->become(upgrading(self));
}

connection_actor::behavior_type
connection(connection_ptr self, connection_settings_ptr cfg, hub_actor hub,
           presence_actor presence, stats* st, transport_ptr socket, user_id user,
           std::string remote, std::optional<caf::timespan> lifetime,
           recovery_request recover, channels_actor channels, channel_grants grants) {
  auto& s = self->state;
  s.cfg = std::move(cfg);
  s.hub = std::move(hub);
  s.presence = std::move(presence);
  s.channels = std::move(channels);
  s.grants = std::move(grants);
  s.st = st;
  s.socket = std::move(socket);
  s.user = user;
  s.remote = std::move(remote);
  s.last_activity = s.refilled = self->clock().now();
  s.tokens = 2.0 * s.cfg->rate_limit;
  CAF_LOG_DEBUG("spawn" << CAF_ARG2("actor", self->id()) << CAF_ARG(user)
                        << CAF_ARG2("remote", s.remote));
  // Only a connection whose token expires has this timer; while admitting
  // the expiry waits in the mailbox like every other message.
  if (lifetime) {
    s.expires_at = s.last_activity + *lifetime;
    if (*lifetime > caf::timespan{0})
      arm_expiry(self, *lifetime);
    else
      self->send(handle_of(self), expire_atom::value);
  }
  self->request(s.hub, caf::infinite, register_atom::value, user, handle_of(self),
                std::move(recover))
      .then([self](admission verdict,
                   welcome_info& info) { on_admission(self, verdict, info); },
            [self](caf::error& err) {
              CAF_LOG_WARNING("register failed" << CAF_ARG(err));
              reject(self, admission::over_capacity);
            });
  return admitting();
}

} // namespace

connection_actor spawn_connection(caf::actor_system& sys, connection_settings_ptr cfg,
                                  hub_actor hub, presence_actor presence, stats& st,
                                  transport_ptr socket, user_id user,
                                  std::string remote_address,
                                  std::optional<caf::timespan> lifetime,
                                  recovery_request recover, channels_actor channels,
                                  channel_grants grants) {
  return sys.spawn(connection, std::move(cfg), std::move(hub), std::move(presence), &st,
                   std::move(socket), user, std::move(remote_address), lifetime,
                   std::move(recover), std::move(channels), std::move(grants));
}

} // namespace hubnode
