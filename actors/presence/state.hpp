// The presence actor's state, shared by its parts: grace.cpp (the local
// truth: users online, in their grace, held), watchers.cpp, mirror.cpp (the
// Redis mirror and its resync) and heartbeat.cpp (this node's heartbeat and
// the reaper of dead nodes). Each part says what its fields mean.
#pragma once

#include "src/base/log.hpp"

#include "actors/messages.hpp"
#include "actors/redis_batch.hpp"
#include "actors/settings.hpp"
#include "src/base/stats.hpp"
#include "src/redis/keys.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "caf/actor_clock.hpp"
#include "caf/stateful_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace hubnode::presence {

// One user with a connection or a grace period here (grace.cpp).
struct user_entry {
  std::uint64_t connections = 0;
  std::uint64_t epoch = 0;
  caf::actor_clock::time_point hold_until;
  bool confirming = false;
};

// Cluster mode only.
struct mirror_state {
  // ---- mirror.cpp
  redis_batch redis;
  redis_keys keys;
  // Redis said it was down; the next "up" means it may have lost our writes.
  bool redis_down = false;
  // Graceful shutdown: this node writes nothing more to Redis.
  bool withdrawn = false;
  bool resync_running = false;
  // Asked for while one was running: run again as soon as it ends.
  bool resync_again = false;
  // A part of a resync failed: run again on the next heartbeat.
  bool resync_failed = false;
  // ---- heartbeat.cpp
  // A heartbeat got through, so P`nodes` must have this node from now on.
  bool registered = false;
  // Dead nodes this node took out of P`nodes` without finishing their reap.
  std::set<std::string> unreaped{};
  // Redis came back at this time: until every node had a node_ttl to beat
  // again, a missing heartbeat key is the outage's, not a death.
  std::optional<caf::actor_clock::time_point> redis_back{};
};

struct presence_state {
  presence_settings cfg;
  stats* st = nullptr;
  // ---- grace.cpp: an offline user has no entry at all.
  std::unordered_map<user_id, user_entry> users;
  // Epochs come from one counter for all users, so an entry that was
  // forgotten and created again never reuses the epoch of an old timer.
  std::uint64_t last_epoch = 0;
  // Users whose grace is held, with the epoch held, in the order their holds
  // end (every hold is as long); a hold timer runs while there are any.
  std::deque<std::pair<user_id, std::uint64_t>> held;
  bool hold_timer = false;
  // ---- watchers.cpp
  std::unordered_map<user_id, std::unordered_map<caf::actor_addr, connection_actor>>
      watchers;
  // The reverse index, so that a connection's DOWN finds what it watched.
  std::unordered_map<caf::actor_addr, std::unordered_set<user_id>> watching;
  // ---- mirror.cpp and heartbeat.cpp
  std::optional<mirror_state> mirror;

  static const char* name;
};

using presence_ptr = presence_actor::stateful_pointer<presence_state>;

} // namespace hubnode::presence
