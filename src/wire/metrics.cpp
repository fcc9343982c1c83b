#include "src/base/log.hpp"

#include "src/wire/metrics.hpp"

#include <fmt/format.h>
#include <iterator>

namespace hubnode {

namespace {

// Appends metric families in the text exposition format. Every value is read
// with a relaxed load: a scrape needs no consistent snapshot across metrics.
class exposition {
public:
  exposition() { out_.reserve(4096); }

  exposition& gauge(const char* name, const char* help, const hubnode::gauge& g) {
    family(name, help, "gauge");
    return sample(name, g.load(std::memory_order_relaxed));
  }

  exposition& counter(const char* name, const char* help, const hubnode::counter& c) {
    family(name, help, "counter");
    return sample(name, c.load(std::memory_order_relaxed));
  }

  // One series per enumerator of `Enum`, labelled with its to_label name.
  template <class Enum, std::size_t N>
  exposition& counters(const char* name, const char* help, const char* label,
                       const std::array<hubnode::counter, N>& values) {
    family(name, help, "counter");
    for (std::size_t i = 0; i < N; ++i)
      labelled(name, label, to_label(static_cast<Enum>(i)), values[i]);
    return *this;
  }

  exposition& family(const char* name, const char* help, const char* type) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help,
                   name, type);
    return *this;
  }

  template <class Value>
  exposition& sample(const char* name, Value value) {
    fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
    return *this;
  }

  // Label values are fixed identifiers, never client input, so they need no
  // escaping.
  exposition& labelled(const char* name, const char* label, const char* label_value,
                       const hubnode::counter& c) {
    fmt::format_to(std::back_inserter(out_), "{}{{{}=\"{}\"}} {}\n", name, label,
                   label_value, c.load(std::memory_order_relaxed));
    return *this;
  }

  std::string finish() { return std::move(out_); }

private:
  std::string out_;
};

void connections(exposition& e, const stats& st) {
  e.gauge("hubnode_connections_active", "Open WebSocket connections on this node.",
          st.connections_active)
      .counter("hubnode_connections_opened_total",
               "WebSocket connections opened since start.", st.connections_opened)
      .counters<close_reason>("hubnode_connections_closed_total",
                              "WebSocket connections closed, by reason.", "reason",
                              st.connections_closed)
      .counters<rejection>("hubnode_handshakes_rejected_total",
                           "WebSocket upgrades refused, by reason.", "reason",
                           st.handshakes_rejected)
      .counter("hubnode_reconnects_total",
               "Connections of users who came back within the presence grace period.",
               st.reconnects)
      .gauge("hubnode_users_online_local",
             "Users with at least one connection on this node.", st.users_online_local);
}

void messages(exposition& e, const stats& st) {
  e.counter("hubnode_messages_received_total", "Data messages received from clients.",
            st.messages_received)
      .counter("hubnode_messages_delivered_total",
               "Messages written to local connections.", st.messages_delivered)
      .counter("hubnode_messages_remote_total", "Messages published for other nodes.",
               st.messages_remote)
      .counters<drop_reason>("hubnode_messages_dropped_total",
                             "Messages not delivered, by reason.", "reason",
                             st.messages_dropped)
      .gauge("hubnode_send_queue_bytes_max",
             "Largest send queue of any connection seen, in bytes.",
             st.send_queue_bytes_max);
  constexpr auto recoveries = "hubnode_recoveries_total";
  e.family(recoveries, "Connections and subscriptions that asked to recover, by result.",
           "counter")
      .labelled(recoveries, "result", "recovered", st.recovered)
      .labelled(recoveries, "result", "not_recovered", st.not_recovered);
}

void housekeeping(exposition& e, const stats& st, std::size_t actors_running) {
  constexpr auto transitions = "hubnode_presence_transitions_total";
  e.counter("hubnode_sweeps_total", "Stale connection sweeps run by the hub.", st.sweeps)
      .counter("hubnode_stale_closed_total", "Connections closed as stale.",
               st.stale_closed)
      .family(transitions, "Presence transitions seen by this node, by new state.",
              "counter")
      .labelled(transitions, "state", "online", st.presence_online)
      .labelled(transitions, "state", "offline", st.presence_offline)
      .gauge("hubnode_redis_up", "1 while Redis is reachable, else 0.", st.redis_up)
      .counter("hubnode_redis_errors_total", "Failed Redis commands and connections.",
               st.redis_errors)
      .family("hubnode_actors_running", "Actors alive in the actor system.", "gauge")
      .sample("hubnode_actors_running", actors_running);
}

void channels(exposition& e, const stats& st) {
  e.gauge("hubnode_channels_active", "Channels with a subscriber on this node.",
          st.channels_active)
      .gauge("hubnode_subscriptions_active", "Channel subscriptions on this node.",
             st.subscriptions_active)
      .counter("hubnode_publications_total",
               "Channel publications accepted on this node.", st.publications);
}

} // namespace

std::string render_metrics(const stats& st, std::size_t actors_running) {
  exposition e;
  connections(e, st);
  messages(e, st);
  channels(e, st);
  housekeeping(e, st, actors_running);
  return e.finish();
}

} // namespace hubnode
