#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "hub"

#include "actors/channels.hpp"

#include "actors/streams/stream_store.hpp"
#include "src/base/clock.hpp"
#include "src/wire/protocol.hpp"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

struct channels_state {
  hub_settings cfg;
  stats* st = nullptr;
  std::optional<channel_streams> streams;
  std::unordered_map<std::string, std::vector<connection_actor>> subscribers;
  // The channels of each subscribed connection, keyed by address because
  // that is all a DOWN message carries. The names are the keys of
  // `subscribers`, which stay while the connection is among them.
  std::unordered_map<caf::actor_addr, std::vector<const std::string*>> by_connection;
  // A publication id is this and a count: NODE-INCARNATION-pN.
  std::string id_prefix;
  std::uint64_t last_publication = 0;

  static const char* name;
};

const char* channels_state::name = "channels";

using channels_ptr = standalone_channels_actor::stateful_pointer<channels_state>;

void deliver(channels_ptr self, const connection_actor& conn, std::string frame) {
  self->send(conn, deliver_atom::value, make_payload(std::move(frame)));
}

void add_subscriber(channels_ptr self, const connection_actor& conn,
                    const std::string& channel) {
  auto& st = self->state;
  auto entry = st.subscribers.try_emplace(channel).first;
  auto& subs = entry->second;
  if (subs.empty())
    stats::add(st.st->channels_active, 1);
  subs.push_back(conn);
  stats::add(st.st->subscriptions_active, 1);
  auto [i, first] = st.by_connection.try_emplace(conn.address());
  // Grown one at a time: a connection holds a handful, for long.
  i->second.reserve(i->second.size() + 1);
  i->second.push_back(&entry->first);
  if (first)
    self->monitor(conn);
}

// `subscribed`, then the replay, then (later turns) live publications.
void subscribe(channels_ptr self, const connection_actor& conn,
               const channel_request& req) {
  auto& st = self->state;
  auto now = self->clock().now();
  auto position = st.streams->open(req.channel, now);
  std::optional<std::vector<payload>> missed;
  std::optional<bool> recovered;
  if (req.recover) {
    missed = st.streams->since(req.channel, *req.recover, now);
    recovered = missed.has_value();
    self->state.st->recovery(*recovered);
  }
  deliver(self, conn,
          protocol::subscribed(req.channel, req.ref, req.has_ref, position, recovered));
  if (missed)
    for (auto& frame : *missed)
      self->send(conn, deliver_atom::value, frame);
  add_subscriber(self, conn, req.channel);
}

// Drops one subscription.
void remove_subscriber(channels_ptr self, const caf::actor_addr& conn,
                       const std::string& channel) {
  auto& st = self->state;
  auto i = st.subscribers.find(channel);
  if (i == st.subscribers.end())
    return;
  auto& subs = i->second;
  auto j = std::find(subs.begin(), subs.end(), conn);
  if (j == subs.end())
    return;
  subs.erase(j);
  stats::add(st.st->subscriptions_active, -1);
  // Before the entry may go: `channel` may be its key.
  st.streams->close(channel, self->clock().now());
  if (subs.empty()) {
    st.subscribers.erase(i);
    stats::add(st.st->channels_active, -1);
  }
}

void unsubscribe(channels_ptr self, const connection_actor& conn,
                 const channel_request& req) {
  auto& st = self->state;
  auto i = st.by_connection.find(conn.address());
  if (i == st.by_connection.end())
    return;
  auto& mine = i->second;
  auto name = std::find_if(mine.begin(), mine.end(),
                           [&](const std::string* n) { return *n == req.channel; });
  if (name == mine.end())
    return;
  // Off the list before the name it points to may go with its channel.
  mine.erase(name);
  if (mine.empty()) {
    st.by_connection.erase(i);
    self->demonitor(conn.address());
  }
  remove_subscriber(self, conn.address(), req.channel);
  deliver(self, conn,
          protocol::unsubscribed(req.channel, req.ref, req.has_ref, "client"));
}

// A closed connection's subscriptions go with it.
void forget(channels_ptr self, const caf::actor_addr& conn) {
  auto i = self->state.by_connection.find(conn);
  if (i == self->state.by_connection.end())
    return;
  for (auto* channel : i->second)
    remove_subscriber(self, conn, *channel);
  self->state.by_connection.erase(i);
}

struct accepted {
  std::string id;
  std::uint64_t offset = 0;
};

// Appended and sent to every subscriber as one frame, serialised once.
accepted publish(channels_ptr self, const std::string& channel, std::string_view from,
                 std::string_view data) {
  auto& st = self->state;
  accepted result;
  result.id = fmt::format("{}{}", st.id_prefix, ++st.last_publication);
  auto frame =
      st.streams->append(channel, self->clock().now(), [&](std::uint64_t offset) {
        result.offset = offset;
        return make_payload(
            protocol::publication(channel, result.id, offset, from, data, now_ms()));
      });
  stats::bump(st.st->publications);
  if (auto i = st.subscribers.find(channel); i != st.subscribers.end())
    for (auto& conn : i->second)
      self->send(conn, deliver_atom::value, frame);
  return result;
}

void publish_from(channels_ptr self, const connection_actor& conn, user_id user,
                  const channel_request& req) {
  auto done = publish(self, req.channel, std::to_string(user), req.data);
  deliver(self, conn,
          protocol::published(req.channel, req.ref, req.has_ref, done.id, done.offset));
}

std::string history(channels_ptr self, const history_request& req) {
  auto slice =
      self->state.streams->kept(req.channel, req.since, req.limit, self->clock().now());
  return protocol::history(req.channel, slice.top, slice.entries);
}

standalone_channels_actor::behavior_type channels(channels_ptr self, hub_settings cfg,
                                                  stats* st) {
  auto& s = self->state;
  s.cfg = std::move(cfg);
  s.st = st;
  s.id_prefix = fmt::format("{}-{}-p", s.cfg.node_id, s.cfg.incarnation);
  s.streams.emplace(stream_settings{s.cfg.incarnation + "c", s.cfg.history_size,
                                    s.cfg.history_ttl, s.cfg.recover_limit});
  self->set_down_handler([self](caf::down_msg& msg) { forget(self, msg.source); });
  self->delayed_send(self, s.cfg.sweep_interval, sweep_atom::value);
  return {
      [self](subscribe_atom, const connection_actor& conn, const channel_request& req) {
        subscribe(self, conn, req);
      },
      [self](unsub_atom, const connection_actor& conn, const channel_request& req) {
        unsubscribe(self, conn, req);
      },
      [self](publish_atom, const connection_actor& conn, user_id user,
             const channel_request& req) { publish_from(self, conn, user, req); },
      [self](publish_atom, const std::string& channel, const std::string& data) {
        auto done = publish(self, channel, "server", data);
        return caf::make_result(std::move(done.id), done.offset);
      },
      [self](query_atom, const history_request& req) { return history(self, req); },
      [self](sweep_atom) {
        self->state.streams->expire(self->clock().now());
        self->delayed_send(self, self->state.cfg.sweep_interval, sweep_atom::value);
      },
  };
}

} // namespace

standalone_channels_actor spawn_channels(caf::actor_system& sys, hub_settings cfg,
                                         stats& st) {
  return sys.spawn(channels, std::move(cfg), &st);
}

} // namespace hubnode
