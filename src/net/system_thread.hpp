// A thread of hubnode's own that CAF knows of, as it knows its own: CAF's
// logger works on it, it has a name (top, gdb), and the actor system counts
// it while it runs.
#pragma once

#include "src/base/log.hpp"

#include <thread>
#include <utility>

#include "caf/actor_system.hpp"
#include "caf/detail/set_thread_name.hpp"

namespace hubnode {

template <class F>
std::thread system_thread(caf::actor_system& system, const char* name, F body) {
  return std::thread([&system, name, body = std::move(body)]() mutable {
    CAF_SET_LOGGER_SYS(&system);
    caf::detail::set_thread_name(name);
    system.thread_started();
    body();
    system.thread_terminates();
  });
}

} // namespace hubnode
