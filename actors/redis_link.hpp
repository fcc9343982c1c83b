// What the two Redis actors (redis_commands.cpp, redis_subscriber.cpp) share:
// the up/down state of their one connection and the reconnect backoff.
//
// Both actors follow the same three states of their link (their own files
// draw what they add):
//
//                connect ok                 connect ok
//   unknown ─────────────────> up <──────────────────────┐
//      │                        │                        │
//      │ connect fails          │ a command or read fails│
//      │                        v                        │
//      └──────────────────> down ──reconnect timer───────┘
//                          │  ^     (backoff_min doubling to backoff_max)
//                          └──┘ connect fails again: still down
//
// Each actor's state has `cfg` (redis_settings), `st` (stats*), `link`
// (link_status) and a static `link_label`; it reacts to reconnect_atom by
// connecting, and to news through its own announce(self, up, was).
#pragma once

#include "actors/settings.hpp"
#include "src/base/stats.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

#include "caf/atom.hpp"
#include "caf/logger.hpp"

namespace hubnode {

// The timer both actors send themselves; not part of their interfaces.
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;

// Up/down of one connection and when to try again. Starts unknown, so that
// the first outcome, up or down, counts as a transition.
struct link_status {
  enum class state : std::uint8_t { unknown, up, down };
  state current = state::unknown;
  caf::timespan backoff{0};
  bool reconnect_scheduled = false;
  std::string reason; // of the last failure

  bool up() const { return current == state::up; }
};

// Whatever the settings say, attempts never come faster than this.
constexpr auto backoff_floor = caf::timespan{std::chrono::milliseconds(10)};

inline std::string where(const redis_settings& cfg) {
  return cfg.endpoint.host + ":" + std::to_string(cfg.endpoint.port);
}

template <class Self>
void schedule_reconnect(Self* self) {
  auto& link = self->state.link;
  if (link.reconnect_scheduled)
    return;
  link.reconnect_scheduled = true;
  auto delay = std::max(link.backoff, backoff_floor);
  self->delayed_send(self, delay, reconnect_atom::value);
  link.backoff =
      std::max(std::min(delay * 2, self->state.cfg.backoff_max), backoff_floor);
}

// A connect (and for the subscriber, its resubscribe) succeeded. Only a
// change is news.
template <class Self>
void went_up(Self* self) {
  auto& s = self->state;
  s.link.backoff = s.cfg.backoff_min;
  s.link.reason.clear();
  auto was = s.link.current;
  if (was == link_status::state::up)
    return;
  s.link.current = link_status::state::up;
  CAF_LOG_INFO(s.link_label << " up" << CAF_ARG2("at", where(s.cfg)));
  announce(self, true, was);
}

// Every failed connect and command lands here; the connection is closed
// already. The actor hears of each failure with the state before it: only
// the first failure after being up (or at start) is news to others.
template <class Self>
void went_down(Self* self, std::string why) {
  auto& s = self->state;
  stats::bump(s.st->redis_errors);
  auto was = s.link.current;
  s.link.current = link_status::state::down;
  s.link.reason = std::move(why);
  schedule_reconnect(self);
  if (was == link_status::state::down)
    CAF_LOG_DEBUG(s.link_label << " still down" << CAF_ARG2("reason", s.link.reason));
  else
    CAF_LOG_INFO(s.link_label << " down: " << s.link.reason);
  announce(self, false, was);
}

} // namespace hubnode
