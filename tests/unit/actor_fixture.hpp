// Deterministic actor tests: CAF's test coordinator runs every actor on the
// test's own thread, only when the test says so, and its clock moves only when
// the test moves it. No sleeps, no real timers.
#pragma once

#include "src/base/log.hpp"

#include "actors/messages.hpp"
#include "actors/settings.hpp"
#include "actors/transport.hpp"
#include "src/base/stats.hpp"
#include "src/config.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/scheduler/test_coordinator.hpp"
#include "caf/send.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode::test {

// Stands in for a WebSocket session and records what the actor asked of it.
struct fake_transport : transport {
  int accepts = 0;
  std::vector<admission> rejects;
  std::vector<std::vector<payload>> writes;
  int pings = 0;
  std::vector<std::uint16_t> closes;
  // Writes the test lets count as written to the socket.
  std::size_t acknowledged = 0;

  // The welcome goes out with the 101, so it counts as written at once.
  void accept(payload welcome) override {
    ++accepts;
    writes.push_back({std::move(welcome)});
    acknowledged = writes.size();
  }
  void reject(admission why) override { rejects.push_back(why); }
  void write(std::vector<payload> frames) override {
    writes.push_back(std::move(frames));
  }
  std::uint64_t unsent_bytes() const override {
    std::uint64_t bytes = 0;
    for (auto i = acknowledged; i < writes.size(); ++i)
      for (auto& frame : writes[i])
        bytes += frame->size();
    return bytes;
  }
  void ping() override { ++pings; }
  void close(std::uint16_t code) override { closes.push_back(code); }

  std::vector<payload> frames() const {
    std::vector<payload> result;
    for (auto& batch : writes)
      result.insert(result.end(), batch.begin(), batch.end());
    return result;
  }
};

inline boost::json::object parse(const payload& frame) {
  return boost::json::parse(*frame).as_object();
}

inline std::string type_of(const payload& frame) {
  return boost::json::value_to<std::string>(parse(frame).at("type"));
}

inline std::vector<std::string> types_of(const std::vector<payload>& frames) {
  std::vector<std::string> result;
  for (auto& frame : frames)
    result.push_back(type_of(frame));
  return result;
}

// Presence as the node runs it with the default options (node_options{}), but
// with the grace period the test steps the clock by.
inline presence_settings presence_with_grace(caf::timespan grace) {
  auto result = make_presence_settings(node_options{});
  result.grace_period = grace;
  return result;
}

// What a stand-in connection actor received from the hub or presence.
struct probe_log {
  std::vector<payload> delivered;
  int pings = 0;
  int sweeps = 0;
  int shutdowns = 0;
  std::vector<std::pair<user_id, bool>> changes;
  // The channels whose subscription the channels actor ended (the frame is
  // in `delivered` too).
  std::vector<std::string> ended;
};

// A connection actor reduced to a recorder. A real connection quits on
// shutdown; a stubborn probe does not, to show who waits for whom.
inline connection_actor::behavior_type
probe(connection_actor::pointer self, std::shared_ptr<probe_log> log, bool stubborn) {
  return {
      [](upgraded_atom) {},
      [](frame_atom, const inbound_batch&) {},
      [](activity_atom) {},
      [](violation_atom, std::uint16_t) {},
      [](closed_atom, close_reason) {},
      [log](deliver_atom, const payload& frame) { log->delivered.push_back(frame); },
      [log](ping_atom) { ++log->pings; },
      [log](sweep_atom) { ++log->sweeps; },
      [self, log, stubborn](shutdown_atom) {
        ++log->shutdowns;
        if (!stubborn)
          self->quit();
      },
      [log](changed_atom, user_id user, bool online) {
        log->changes.emplace_back(user, online);
      },
      [](expire_atom) {},
      [](flush_atom) {},
      [log](ended_atom, const std::string& channel, const payload& frame) {
        log->ended.push_back(channel);
        log->delivered.push_back(frame);
      },
  };
}

// An answer that may come later than the request (a response promise).
template <class... Ts>
using answer = std::shared_ptr<std::optional<std::tuple<Ts...>>>;

inline inbound request_of(inbound::kind type, std::string ref = {}) {
  inbound in;
  in.type = type;
  in.has_ref = !ref.empty();
  in.ref = std::move(ref);
  return in;
}

inline inbound send_request(user_id to, std::string data, std::string ref = {}) {
  auto in = request_of(inbound::kind::send, std::move(ref));
  in.to = to;
  in.data = std::move(data);
  return in;
}

inline inbound ids_request(inbound::kind type, user_list ids) {
  auto in = request_of(type);
  in.user_ids = std::move(ids);
  return in;
}

inline std::string to_text(const std::vector<std::string>& xs) {
  std::string result = "[";
  for (auto& x : xs)
    result += (result.size() > 1 ? ", " : "") + x;
  return result + "]";
}

} // namespace hubnode::test

namespace doctest {

template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& xs) {
    return hubnode::test::to_text(xs).c_str();
  }
};

template <>
struct StringMaker<std::vector<std::uint16_t>> {
  static String convert(const std::vector<std::uint16_t>& xs) {
    std::vector<std::string> texts;
    for (auto x : xs)
      texts.push_back(std::to_string(x));
    return hubnode::test::to_text(texts).c_str();
  }
};

} // namespace doctest

namespace hubnode::test {

struct actor_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  stats st;

  actor_fixture()
      : sys(init(cfg)),
        sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    // The hub's timers keep it alive forever and nothing runs actors once the
    // test is over, so waiting for them at the end would never return.
    sys.await_actors_before_shutdown(false);
  }

  // The test coordinator stops by firing timers until none is left, and the
  // hub re-arms its own forever.
  ~actor_fixture() { sched.clock().cancel_all(); }

  static caf::actor_system_config& init(caf::actor_system_config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    cfg.set("logger.console-verbosity", caf::atom("quiet"));
    return cfg;
  }

  // Runs every actor until all mailboxes are empty; timers stay pending.
  void run() { sched.run(); }

  // Moves the test clock, fires the timers that fall due and runs what follows.
  void advance(caf::timespan by) {
    sched.advance_time(by);
    run();
  }

  template <class... Ts, class Handle, class... Xs>
  answer<Ts...> request(const Handle& dest, const Xs&... xs) {
    auto result = std::make_shared<std::optional<std::tuple<Ts...>>>();
    sys.spawn([=](caf::event_based_actor* self) {
      self->request(dest, caf::infinite, xs...)
          .then([result](Ts... ys) { result->emplace(std::move(ys)...); },
                [](caf::error& err) { FAIL("request failed: " << to_string(err)); });
    });
    run();
    return result;
  }

  // Routes `messages` from `from` through `hub`: its answers, in order.
  routed_batch route_all(const hub_actor& hub, std::string from,
                         outgoing_batch messages) {
    auto reply = request<routed_batch>(hub, route_atom::value, from, messages);
    REQUIRE(reply->has_value());
    return std::get<0>(**reply);
  }

  connection_actor spawn_probe(std::shared_ptr<probe_log> log, bool stubborn = false) {
    auto result = sys.spawn(probe, std::move(log), stubborn);
    run();
    return result;
  }

  template <class... Handles>
  void kill(const Handles&... actors) {
    (caf::anon_send_exit(actors, caf::exit_reason::user_shutdown), ...);
    run();
  }

  template <class Handle, class... Xs>
  void send(const Handle& dest, const Xs&... xs) {
    caf::anon_send(dest, xs...);
    run();
  }
};

} // namespace hubnode::test
