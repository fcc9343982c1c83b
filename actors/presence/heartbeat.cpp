#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "presence"

#include "actors/presence/heartbeat.hpp"

#include "actors/presence/mirror.hpp"
#include "actors/presence/redis_io.hpp"
#include "src/redis/presence_scripts.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

namespace hubnode::presence {

// Each heartbeat sets this node's key P`node:ID` with a PX of node_ttl,
// adds the node to P`nodes` and reads P`nodes` back. Once one got through,
// this node is `registered`: found missing from P`nodes` later, it was
// reaped by a survivor or Redis lost its data, and a resync writes it again.
//
// Every other node in P`nodes`, as the reaper of this node sees it:
//
//                  its key P`node:ID` gone, and Redis up for a node_ttl
//   in P`nodes` ------------------------------------------------> dead
//        ^                                                         |
//        |                                       SREM [the claim]  |
//        |                                                         v
//        |                     another survivor's <-- answered 0 - claiming
//        |                                                         |     |
//        |                                             answered 1  |     |
//        |                                                         v     |
//        |   reaped <-- every user, then a PING behind them --- reaping  | no answer
//        |                                                         |     |
//        |                                           a step failed |     |
//        |                                                         v     v
//        +----------- the next beat: SADD to P`nodes` --------- unreaped
//
// Back in P`nodes`, the next pass of any survivor claims the node anew: one
// that this node took out of P`nodes` is never left unlooked at. A dead node
// that restarted meanwhile loses nothing: the reap script leaves the fields
// of a node with a heartbeat key alone.

namespace {

std::vector<std::string> other_nodes(presence_ptr self, const redis_reply& members) {
  std::vector<std::string> result;
  for (auto& member : members.elements)
    if (member.str != self->state.cfg.node_id)
      result.push_back(member.str);
  return result;
}

// Every field of the dead `node`, user by user. The script does nothing once
// the node's heartbeat is back (it restarted and clears its own entries).
void reap_node(presence_ptr self, std::string node) {
  CAF_LOG_INFO("reaping a dead node" << CAF_ARG(node));
  auto failed = std::make_shared<bool>(false);
  auto on_batch = [self, node, failed](const user_list& users) {
    auto& keys = mirror(self).keys;
    redis_pipeline pipeline;
    for (auto user : users)
      pipeline.push_back(
          presence_scripts::reap(keys, user, node, event_of(self, user, false), true));
    exchange(self, std::move(pipeline), "reap",
             count_transitions(self, &stats::presence_offline),
             [failed] { *failed = true; });
  };
  scan_users(self, "0", on_batch, [self, node, failed](bool complete) {
    auto done = [self, node, failed, complete] {
      if (complete && !*failed)
        return;
      CAF_LOG_WARNING("dead node not fully reaped, registered again" << CAF_ARG(node));
      mirror(self).unreaped.insert(node);
    };
    // The last batch's reaps are still in flight: a PING queued behind them
    // answers after they did.
    exchange(
        self, {{"PING"}}, "reap", [done](const redis_replies&) { done(); },
        [failed, done] {
          *failed = true;
          done();
        });
  });
}

// Only the node whose SREM removed the dead node from P`nodes` reaps it, so
// two survivors noticing the same death at once do not both walk the keys.
// Without an answer the SREMs may have run: the nodes are registered again.
void claim_dead_nodes(presence_ptr self, std::vector<std::string> dead) {
  redis_pipeline pipeline;
  for (auto& node : dead)
    pipeline.push_back({"SREM", mirror(self).keys.nodes, node});
  exchange(
      self, std::move(pipeline), "claim",
      [self, dead](const redis_replies& replies) {
        for (std::size_t i = 0; i < dead.size(); ++i)
          if (integer_at(replies, i) == 1)
            reap_node(self, dead[i]);
      },
      [self, dead] { mirror(self).unreaped.insert(dead.begin(), dead.end()); });
}

bool reaper_waits(presence_ptr self) {
  auto& back = mirror(self).redis_back;
  return back && self->clock().now() < *back + self->state.cfg.node_ttl;
}

// A registered node whose heartbeat key has expired is dead.
void find_dead_nodes(presence_ptr self, std::vector<std::string> nodes) {
  if (nodes.empty())
    return;
  redis_pipeline pipeline;
  for (auto& node : nodes)
    pipeline.push_back({"EXISTS", mirror(self).keys.node(node)});
  exchange(self, std::move(pipeline), "liveness",
           [self, nodes](const redis_replies& replies) {
             std::vector<std::string> dead;
             for (std::size_t i = 0; i < nodes.size(); ++i)
               if (integer_at(replies, i) == 0)
                 dead.push_back(nodes[i]);
             if (!dead.empty())
               claim_dead_nodes(self, std::move(dead));
           });
}

// The heartbeat's replies: SET, SADD of this node, SADD of each node in
// `unreaped`, SMEMBERS of P`nodes`.
void on_beat(presence_ptr self, const redis_replies& replies,
             const std::set<std::string>& unreaped) {
  auto& m = mirror(self);
  auto members = 2 + unreaped.size();
  if (replies.size() != members + 1 ||
      replies[members].type != redis_reply::kind::array) {
    CAF_LOG_WARNING("unexpected heartbeat reply");
    return;
  }
  for (auto& dead : unreaped)
    m.unreaped.erase(dead);
  // Missing from P`nodes` after having been there: a survivor took this
  // node for dead and reaped it, or Redis lost its data.
  if (integer_at(replies, 1) == 1 && m.registered) {
    CAF_LOG_WARNING("this node was missing from Redis, writing it again");
    resync(self);
  }
  m.registered = true;
  if (!reaper_waits(self))
    find_dead_nodes(self, other_nodes(self, replies[members]));
}

} // namespace

void beat(presence_ptr self) {
  if (!mirroring(self))
    return;
  auto& keys = mirror(self).keys;
  auto& node = self->state.cfg.node_id;
  auto ttl =
      std::chrono::duration_cast<std::chrono::milliseconds>(self->state.cfg.node_ttl);
  redis_pipeline pipeline{{"SET", keys.node(node), "1", "PX",
                           std::to_string(std::max<std::int64_t>(1, ttl.count()))},
                          {"SADD", keys.nodes, node}};
  auto unreaped = mirror(self).unreaped;
  for (auto& dead : unreaped)
    pipeline.push_back({"SADD", keys.nodes, dead});
  pipeline.push_back({"SMEMBERS", keys.nodes});
  exchange(self, std::move(pipeline), "heartbeat",
           [self, unreaped](const redis_replies& replies) {
             on_beat(self, replies, unreaped);
           });
}

void on_heartbeat(presence_ptr self) {
  if (!mirroring(self))
    return;
  auto& m = mirror(self);
  if (m.resync_failed)
    resync(self);
  beat(self);
  self->delayed_send(self, self->state.cfg.heartbeat_interval, heartbeat_atom::value);
}

} // namespace hubnode::presence
