#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "hub"

#include "actors/cluster_channels.hpp"

#include "actors/streams/stream_feed.hpp"
#include "src/base/clock.hpp"
#include "src/wire/protocol.hpp"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode {

namespace {

// A subscription's life here:
//
//   subscribe ──> joining ──pub/sub confirmed, stream read──> live
//                    │                                          │
//                    └─ Redis down ─> ended (unavailable)       ├─ unsubscribe, close
//                                                               └─ entries lost ─> ended
//                                                                  (insufficient_state)
struct cluster_channels_state {
  hub_settings cfg;
  cluster_actor cluster;
  stats* st = nullptr;
  // Whether the command link to Redis is up: while it is not, subscribe and
  // publish are answered `unavailable`.
  bool redis_up = false;
  // The subscribers of each channel with one here, as readers of its feed.
  std::unordered_map<std::string, stream_feed> feeds;
  // The channels of each subscribed connection, keyed by address because
  // that is all a DOWN message carries. The names are the keys of `feeds`,
  // which stay while the connection is among the feed's readers.
  std::unordered_map<caf::actor_addr, std::vector<const std::string*>> by_connection;
  // A publication id is this and a count: NODE-INCARNATION-pN.
  std::string id_prefix;
  std::uint64_t last_publication = 0;

  static const char* name;
};

const char* cluster_channels_state::name = "channels";

using channels_ptr = cluster_channels_actor::stateful_pointer<cluster_channels_state>;

void deliver(channels_ptr self, const connection_actor& conn, std::string frame) {
  self->send(conn, deliver_atom::value, make_payload(std::move(frame)));
}

// Off the connection's list; its actor stays monitored while it has others.
void forget_subscription(channels_ptr self, const caf::actor_addr& conn,
                         const std::string& channel) {
  auto i = self->state.by_connection.find(conn);
  if (i == self->state.by_connection.end())
    return;
  auto& mine = i->second;
  mine.erase(std::remove_if(mine.begin(), mine.end(),
                            [&](const std::string* name) { return *name == channel; }),
             mine.end());
  if (mine.empty()) {
    self->state.by_connection.erase(i);
    self->demonitor(conn);
  }
  stats::add(self->state.st->subscriptions_active, -1);
}

// A channel without subscribers here: this node stops hearing it.
void drop_if_empty(channels_ptr self, const std::string& channel) {
  auto i = self->state.feeds.find(channel);
  if (i == self->state.feeds.end() || !i->second.empty())
    return;
  // Before the entry goes: `channel` may be its key.
  self->send(self->state.cluster, unsub_atom::value, channel);
  stats::add(self->state.st->channels_active, -1);
  self->state.feeds.erase(i);
}

// Ends a subscription from this side with `frame`; the connection forgets it.
void end(channels_ptr self, const connection_actor& conn, const std::string& channel,
         std::string frame) {
  self->send(conn, ended_atom::value, channel, make_payload(std::move(frame)));
}

// A subscriber that missed entries it cannot get.
auto lost_on(channels_ptr self, const std::string& channel) {
  return [self, channel](const connection_actor& conn) {
    forget_subscription(self, conn.address(), channel);
    end(self, conn, channel,
        protocol::unsubscribed(channel, {}, false, "insufficient_state"));
  };
}

auto deliver_to(channels_ptr self) {
  return [self](const connection_actor& conn, const payload& frame) {
    self->send(conn, deliver_atom::value, frame);
  };
}

stream_feed* feed_of(channels_ptr self, const std::string& channel) {
  auto i = self->state.feeds.find(channel);
  return i == self->state.feeds.end() ? nullptr : &i->second;
}

// The `error` of a subscribe or publish that Redis being down refuses.
std::string unavailable(const channel_request& req) {
  return protocol::error("unavailable", "Redis is down; try again", req.ref, req.has_ref);
}

void refuse_unavailable(channels_ptr self, const connection_actor& conn,
                        const channel_request& req) {
  deliver(self, conn, unavailable(req));
}

// A joining subscriber that cannot be served: Redis went down meanwhile.
void join_failed(channels_ptr self, const connection_actor& conn,
                 const channel_request& req, stream_feed::ticket held) {
  if (auto* feed = feed_of(self, req.channel))
    feed->abandon(held, [self, &req](const connection_actor& c) {
      forget_subscription(self, c.address(), req.channel);
    });
  drop_if_empty(self, req.channel);
  end(self, conn, req.channel, unavailable(req));
}

// `subscribed`, then the replay and what the feed brought meanwhile.
void joined(channels_ptr self, const connection_actor& conn, const channel_request& req,
            stream_feed::ticket held, const stream_read& read) {
  auto* feed = feed_of(self, req.channel);
  // Unsubscribed (or closed) while joining: nothing to answer.
  if (!feed || !feed->holds(held))
    return;
  std::optional<bool> recovered;
  std::uint64_t start = read.top.offset;
  if (req.recover) {
    recovered = recovers(read, *req.recover, self->state.cfg.recover_limit);
    self->state.st->recovery(*recovered);
    if (*recovered)
      start = req.recover->offset;
  }
  deliver(self, conn,
          protocol::subscribed(req.channel, req.ref, req.has_ref, read.top, recovered));
  feed->settle(held, read, start, deliver_to(self), lost_on(self, req.channel));
  drop_if_empty(self, req.channel);
}

void read_joined(channels_ptr self, const connection_actor& conn,
                 const channel_request& req, stream_feed::ticket held) {
  read_request query;
  if (req.recover)
    query = {req.recover->offset, self->state.cfg.recover_limit};
  self->request(self->state.cluster, caf::infinite, read_atom::value, req.channel, query)
      .then([self, conn, req,
             held](const stream_read& read) { joined(self, conn, req, held, read); },
            [self, conn, req, held](caf::error&) { join_failed(self, conn, req, held); });
}

// The subscriber is a reader of the feed from now on (held until the read),
// and the stream is read once this node hears the channel, so that every
// later entry comes by the feed.
void subscribe(channels_ptr self, const connection_actor& conn,
               const channel_request& req) {
  auto& st = self->state;
  if (!st.redis_up)
    return end(self, conn, req.channel, unavailable(req));
  auto [i, added] = st.feeds.try_emplace(req.channel, true);
  if (added)
    stats::add(st.st->channels_active, 1);
  auto held = i->second.join(conn);
  auto [j, first] = st.by_connection.try_emplace(conn.address());
  // Grown one at a time: a connection holds a handful, for long.
  j->second.reserve(j->second.size() + 1);
  j->second.push_back(&i->first);
  if (first)
    self->monitor(conn);
  stats::add(st.st->subscriptions_active, 1);
  self->request(st.cluster, caf::infinite, subscribe_atom::value, req.channel)
      .then(
          [self, conn, req, held](bool ok) {
            if (ok)
              read_joined(self, conn, req, held);
            else
              join_failed(self, conn, req, held);
          },
          [self, conn, req, held](caf::error&) { join_failed(self, conn, req, held); });
}

void unsubscribe(channels_ptr self, const connection_actor& conn,
                 const channel_request& req) {
  auto* feed = feed_of(self, req.channel);
  if (!feed)
    return;
  feed->leave(conn.address());
  forget_subscription(self, conn.address(), req.channel);
  drop_if_empty(self, req.channel);
  deliver(self, conn,
          protocol::unsubscribed(req.channel, req.ref, req.has_ref, "client"));
}

// A closed connection's subscriptions go with it.
void forget(channels_ptr self, const caf::actor_addr& conn) {
  auto i = self->state.by_connection.find(conn);
  if (i == self->state.by_connection.end())
    return;
  auto channels = std::move(i->second);
  self->state.by_connection.erase(i);
  for (auto* channel : channels) {
    stats::add(self->state.st->subscriptions_active, -1);
    if (auto* feed = feed_of(self, *channel))
      feed->leave(conn);
    drop_if_empty(self, *channel);
  }
}

// The publication with "offset":0, which the append script fills in.
payload publication_frame(channels_ptr self, const std::string& channel,
                          std::string_view from, std::string_view data, std::string& id) {
  auto& st = self->state;
  id = fmt::format("{}{}", st.id_prefix, ++st.last_publication);
  return make_payload(protocol::publication(channel, id, 0, from, data, now_ms()));
}

void publish_from(channels_ptr self, const connection_actor& conn, user_id user,
                  const channel_request& req) {
  if (!self->state.redis_up)
    return refuse_unavailable(self, conn, req);
  std::string id;
  auto frame = publication_frame(self, req.channel, std::to_string(user), req.data, id);
  self->request(self->state.cluster, caf::infinite, publish_atom::value, req.channel,
                frame)
      .then(
          [self, conn, req, id](std::uint64_t offset) {
            stats::bump(self->state.st->publications);
            deliver(self, conn,
                    protocol::published(req.channel, req.ref, req.has_ref, id, offset));
          },
          [self, conn, req](caf::error&) { refuse_unavailable(self, conn, req); });
}

caf::result<std::string, std::uint64_t>
publish_server(channels_ptr self, const std::string& channel, const std::string& data) {
  auto rp = self->make_response_promise<std::string, std::uint64_t>();
  std::string id;
  auto frame = publication_frame(self, channel, "server", data, id);
  self->request(self->state.cluster, caf::infinite, publish_atom::value, channel, frame)
      .then(
          [self, rp, id](std::uint64_t offset) mutable {
            stats::bump(self->state.st->publications);
            rp.deliver(id, offset);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

caf::result<std::string> history(channels_ptr self, const history_request& req) {
  auto rp = self->make_response_promise<std::string>();
  self->request(self->state.cluster, caf::infinite, read_atom::value, req.channel,
                read_request{req.since, req.limit})
      .then(
          [rp, channel = req.channel](const stream_read& read) mutable {
            std::vector<payload> frames;
            frames.reserve(read.entries.size());
            for (auto& e : read.entries)
              frames.push_back(e.frame);
            rp.deliver(protocol::history(channel, read.top, frames));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

void resync(channels_ptr self, const std::string& channel, const stream_feed::resync& r) {
  self->request(self->state.cluster, caf::infinite, read_atom::value, channel,
                read_request{r.after, self->state.cfg.recover_limit})
      .then(
          [self, channel, held = r.held](const stream_read& read) {
            if (auto* feed = feed_of(self, channel))
              feed->settle(held, read, std::nullopt, deliver_to(self),
                           lost_on(self, channel));
            drop_if_empty(self, channel);
          },
          [self, channel, held = r.held](caf::error&) {
            if (auto* feed = feed_of(self, channel))
              feed->abandon(held, lost_on(self, channel));
            drop_if_empty(self, channel);
          });
}

void remote(channels_ptr self, const std::string& channel, const std::string& epoch,
            const stream_entry& entry) {
  auto* feed = feed_of(self, channel);
  if (!feed)
    return;
  auto r = feed->push(epoch, entry, deliver_to(self), lost_on(self, channel));
  if (r)
    resync(self, channel, *r);
  drop_if_empty(self, channel);
}

void resync_all(channels_ptr self) {
  for (auto& [channel, feed] : self->state.feeds)
    if (auto r = feed.hold_live())
      resync(self, channel, *r);
}

// A stream's ttl counts from its last entry, so a quiet channel's stream
// is read now and then while it has subscribers here: that keeps it, and
// tells them when it was lost anyway (a new epoch).
void refresh(channels_ptr self) {
  for (auto& [channel, feed] : self->state.feeds)
    self->request(self->state.cluster, caf::infinite, read_atom::value, channel,
                  read_request{})
        .then(
            [self, channel = channel](const stream_read& read) {
              if (auto* f = feed_of(self, channel))
                f->observe(read.top, lost_on(self, channel));
              drop_if_empty(self, channel);
            },
            [](caf::error&) {});
  self->delayed_send(self, self->state.cfg.history_ttl / 3, heartbeat_atom::value);
}

cluster_channels_actor::behavior_type
cluster_channels(channels_ptr self, hub_settings cfg, cluster_actor cluster, stats* st) {
  auto& s = self->state;
  s.cfg = std::move(cfg);
  s.cluster = std::move(cluster);
  s.st = st;
  s.id_prefix = fmt::format("{}-{}-p", s.cfg.node_id, s.cfg.incarnation);
  self->set_down_handler([self](caf::down_msg& msg) { forget(self, msg.source); });
  self->delayed_send(self, s.cfg.history_ttl / 3, heartbeat_atom::value);
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
        return publish_server(self, channel, data);
      },
      [self](query_atom, const history_request& req) { return history(self, req); },
      [self](heartbeat_atom) { refresh(self); },
      [self](remote_atom, const std::string& channel, const std::string& epoch,
             const stream_entry& entry) { remote(self, channel, epoch, entry); },
      [self](resync_atom) { resync_all(self); },
      [self](redis_state_atom, bool up) { self->state.redis_up = up; },
  };
}

} // namespace

cluster_channels_actor spawn_cluster_channels(caf::actor_system& sys, hub_settings cfg,
                                              cluster_actor cluster, stats& st) {
  return sys.spawn(cluster_channels, std::move(cfg), std::move(cluster), &st);
}

} // namespace hubnode
