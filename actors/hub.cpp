#include "src/log.hpp"
#define CAF_LOG_COMPONENT "hub"

#include "actors/hub.hpp"

#include "src/protocol.hpp"

#include <algorithm>
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
  stats* st = nullptr;
  std::unordered_map<user_id, std::vector<connection_actor>> by_user;
  // Keyed by address because that is all a DOWN message carries.
  std::unordered_map<caf::actor_addr, registration> by_actor;
  std::uint64_t last_connection = 0;
  std::uint64_t last_message = 0;
  bool shutting_down = false;
  std::vector<caf::typed_response_promise<bool>> drained;

  static const char* name;
};

const char* hub_state::name = "hub";

using hub_ptr = hub_actor::stateful_pointer<hub_state>;
using admission_result = caf::result<admission, std::string>;

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
  return {why, std::string{}};
}

// Registration comes before the welcome (the connection sends it only once
// admitted), so whatever is routed to the user after the welcome finds it here.
admission_result admit(hub_ptr self, user_id user, const connection_actor& conn) {
  auto& st = self->state;
  if (st.shutting_down || st.by_actor.size() >= st.cfg.max_connections)
    return refuse(self, user, admission::over_capacity, rejection::over_capacity);
  if (local_connections(self, user) >= st.cfg.max_connections_per_user)
    return refuse(self, user, admission::too_many_connections,
                  rejection::too_many_connections);
  auto id = fmt::format("{}-c{}", st.cfg.node_id, ++st.last_connection);
  auto& conns = st.by_user[user];
  if (conns.empty())
    stats::add(st.st->users_online_local, 1);
  conns.push_back(conn);
  st.by_actor.emplace(conn.address(), registration{user, id});
  self->monitor(conn);
  stats::add(st.st->connections_active, 1);
  stats::bump(st.st->connections_opened);
  self->send(st.presence, connected_atom::value, user);
  CAF_LOG_DEBUG("register" << CAF_ARG2("actor", conn->id()) << CAF_ARG(user)
                           << CAF_ARG2("connection", id));
  return {admission::admitted, std::move(id)};
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
  stats::add(st.st->connections_active, -1);
  self->send(st.presence, disconn_atom::value, reg.user);
  CAF_LOG_DEBUG("unregister" << CAF_ARG2("actor", conn.id()) << CAF_ARG2("user", reg.user)
                             << CAF_ARG2("connection", reg.id));
  if (st.shutting_down && st.by_actor.empty())
    answer_drained(self);
}

// Delivery never waits for presence, and the hub is one actor, so the
// deliveries to each recipient keep the order in which routes arrived.
caf::result<std::string, bool> route(hub_ptr self, user_id to, const std::string& from,
                                     const std::string& data) {
  auto& st = self->state;
  auto id = fmt::format("{}-m{}", st.cfg.node_id, ++st.last_message);
  auto i = st.by_user.find(to);
  if (i != st.by_user.end()) {
    auto frame = make_payload(protocol::message(id, from, data, protocol::now_ms()));
    for (auto& conn : i->second)
      self->send(conn, deliver_atom::value, frame);
    stats::bump(st.st->messages_delivered, i->second.size());
    return {std::move(id), true};
  }
  // Presence also counts the grace period, which this hub no longer sees.
  auto rp = self->make_response_promise<std::string, bool>();
  self->request(st.presence, caf::infinite, online_atom::value, to)
      .then([rp, id](bool online) mutable { rp.deliver(id, online); },
            [rp, id](caf::error& err) mutable {
              CAF_LOG_WARNING("presence did not answer" << CAF_ARG(err));
              rp.deliver(id, false);
            });
  return rp;
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
  self->state.presence = std::move(presence);
  self->state.st = st;
  self->set_down_handler([self](caf::down_msg& msg) { unregister(self, msg.source); });
  self->delayed_send(self, self->state.cfg.ping_interval, ping_atom::value);
  self->delayed_send(self, self->state.cfg.sweep_interval, sweep_atom::value);
  return {
      [self](register_atom, user_id user, const connection_actor& conn) {
        return admit(self, user, conn);
      },
      [self](route_atom, user_id to, const std::string& from, const std::string& data) {
        return route(self, to, from, data);
      },
      [self](ping_atom) {
        broadcast(self, ping_atom::value);
        self->delayed_send(self, self->state.cfg.ping_interval, ping_atom::value);
      },
      [self](sweep_atom) {
        stats::bump(self->state.st->sweeps);
        broadcast(self, sweep_atom::value);
        self->delayed_send(self, self->state.cfg.sweep_interval, sweep_atom::value);
      },
      [self](shutdown_atom) { return shutdown(self); },
  };
}

} // namespace

hub_actor spawn_hub(caf::actor_system& sys, hub_settings cfg, presence_actor presence,
                    stats& st) {
  return sys.spawn(hub, std::move(cfg), std::move(presence), &st);
}

} // namespace hubnode
