// The messages between hubnode's actors, as typed interfaces: every pair of
// actors that talk has its vocabulary checked by the compiler.
//
//   session (src/) --upgraded/frame/activity/violation/closed--> connection
//   connection --register/route--> hub --deliver/ping/sweep/shutdown--> connection
//   hub --connected/disconnected/online--> presence --presence_changed--> connection
//   http (src/) --route--> hub, --count--> presence
//   connection --subscribe/unsub/publish--> channels --deliver--> connection
//   http (src/) --publish/query--> channels
//   cluster mode: hub, channels --subscribe/unsub/publish/read--> cluster
//                 cluster --remote/resync--> hub, channels
//                 cluster --subscribe/unsub--> subscriber
//                 cluster --event--> presence;  presence, cluster --redis--> redis
//                 subscriber --remote--> cluster
#pragma once

#include "src/base/types.hpp"
#include "src/redis/types.hpp"

#include "caf/atom.hpp"
#include "caf/replies_to.hpp"
#include "caf/typed_actor.hpp"

namespace hubnode {

// Atoms are at most 10 characters in CAF 0.17.
using register_atom = caf::atom_constant<caf::atom("register")>;
using route_atom = caf::atom_constant<caf::atom("route")>;
using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using upgraded_atom = caf::atom_constant<caf::atom("upgraded")>;
using frame_atom = caf::atom_constant<caf::atom("frame")>;
using activity_atom = caf::atom_constant<caf::atom("activity")>;
using violation_atom = caf::atom_constant<caf::atom("violation")>;
using closed_atom = caf::atom_constant<caf::atom("closed")>;
using connected_atom = caf::atom_constant<caf::atom("connected")>;
using disconn_atom = caf::atom_constant<caf::atom("disconn")>;
using grace_atom = caf::atom_constant<caf::atom("grace")>;
using hold_atom = caf::atom_constant<caf::atom("hold")>;
using online_atom = caf::atom_constant<caf::atom("online")>;
using query_atom = caf::atom_constant<caf::atom("query")>;
using count_atom = caf::atom_constant<caf::atom("count")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using unwatch_atom = caf::atom_constant<caf::atom("unwatch")>;
using changed_atom = caf::atom_constant<caf::atom("changed")>;
using redis_atom = caf::atom_constant<caf::atom("redis")>;
using redis_state_atom = caf::atom_constant<caf::atom("redisstate")>;
using listen_atom = caf::atom_constant<caf::atom("listen")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using unsub_atom = caf::atom_constant<caf::atom("unsub")>;
using publish_atom = caf::atom_constant<caf::atom("publish")>;
using remote_atom = caf::atom_constant<caf::atom("remote")>;
using event_atom = caf::atom_constant<caf::atom("event")>;
using withdraw_atom = caf::atom_constant<caf::atom("withdraw")>;
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
using cluster_atom = caf::atom_constant<caf::atom("cluster")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using read_atom = caf::atom_constant<caf::atom("read")>;
using resync_atom = caf::atom_constant<caf::atom("resync")>;
using feed_atom = caf::atom_constant<caf::atom("feed")>;
using ended_atom = caf::atom_constant<caf::atom("ended")>;

// Told of every Redis up (true) / down (false) transition.
using redis_listener = caf::typed_actor<caf::reacts_to<redis_state_atom, bool>>;

// One command connection to Redis (a detached actor: it may block on its
// own thread, never on the scheduler's).
using redis_actor = caf::typed_actor<
    // run the pipeline in one round trip; an error when Redis is down or slow.
    // A command {"EVALSCRIPT", lua, numkeys, keys..., args...} runs as EVALSHA,
    // loading the script once and again after NOSCRIPT.
    caf::replies_to<redis_atom, redis_pipeline>::with<redis_replies>,
    // send (redis_state, up) to this listener now and on every transition
    caf::reacts_to<listen_atom, redis_listener>>;

// The pub/sub connection to Redis (a detached actor). Every message on a
// subscribed channel goes to its sink as (remote, channel, message).
using subscriber_actor = caf::typed_actor<
    // true once Redis confirmed the channels; false when Redis is down
    caf::replies_to<subscribe_atom, std::vector<std::string>>::with<bool>,
    caf::reacts_to<unsub_atom, std::vector<std::string>>>;

// One WebSocket connection of one user.
using connection_actor = caf::typed_actor<
    // from its session; `frame`: the requests of one read, in order
    caf::reacts_to<upgraded_atom>, caf::reacts_to<frame_atom, inbound_batch>,
    caf::reacts_to<activity_atom>, caf::reacts_to<violation_atom, std::uint16_t>,
    caf::reacts_to<closed_atom, close_reason>,
    // from the hub
    caf::reacts_to<deliver_atom, payload>, caf::reacts_to<ping_atom>,
    caf::reacts_to<sweep_atom>, caf::reacts_to<shutdown_atom>,
    // from presence: a watched user went online (true) or offline (false)
    caf::reacts_to<changed_atom, user_id, bool>,
    // its own timer: the JWT of this connection expired (jwt mode, `exp` only)
    caf::reacts_to<expire_atom>,
    // its own: hand the frames queued meanwhile to the socket in one write
    caf::reacts_to<flush_atom>,
    // from the channels actor: this frame (`unsubscribed`, or an `error`
    // refusing a subscribe) ends the subscription to that channel
    caf::reacts_to<ended_atom, std::string, payload>>;

// Every channel of this node and its subscribers (SPEC section 8), with the
// channels' streams in memory (standalone) or in Redis through the cluster
// actor (cluster mode). The answers to a connection's subscribe, unsubscribe and
// publish come as deliveries, in order with the publications: a
// subscribe's `subscribed` and its replay come before any live publication.
using channels_actor = caf::typed_actor<
    // a new subscription; the connection has checked it is new and allowed
    caf::reacts_to<subscribe_atom, connection_actor, channel_request>,
    // ends an existing subscription with `unsubscribed`
    caf::reacts_to<unsub_atom, connection_actor, channel_request>,
    // a publication of a subscribed connection's user; answered `published`
    caf::reacts_to<publish_atom, connection_actor, user_id, channel_request>,
    // from HTTP: publish raw JSON `data` on a channel from "server"; answers
    // its id and offset
    caf::replies_to<publish_atom, std::string, std::string>::with<std::string,
                                                                  std::uint64_t>,
    // from HTTP: the history body of a channel
    caf::replies_to<query_atom, history_request>::with<std::string>>;

// Standalone mode: with the channels' streams in memory.
using standalone_channels_actor = channels_actor::extend<
    // its own timer: drop expired streams
    caf::reacts_to<sweep_atom>>;

// Cluster mode: with the channels' streams in Redis.
using cluster_channels_actor = channels_actor::extend<
    // from the cluster actor: an entry of a channel with subscribers here,
    // with its epoch; the pub/sub link came back (entries may be lost)
    caf::reacts_to<remote_atom, std::string, std::string, stream_entry>,
    caf::reacts_to<resync_atom>,
    // from the redis actor: the command link is up / down
    caf::reacts_to<redis_state_atom, bool>,
    // its own timer: keep the streams of channels with subscribers here
    caf::reacts_to<heartbeat_atom>>;

// Cross-node delivery and the streams in Redis (cluster mode only).
using cluster_actor = caf::typed_actor<
    // from the hub: a local connection of a user is registered; answers true
    // once this node hears the user's channel (at once when it does already),
    // false when Redis is down or did not confirm in time
    caf::replies_to<subscribe_atom, user_id>::with<bool>,
    // from the hub: the last local connection of a user closed
    caf::reacts_to<unsub_atom, user_id>,
    // from the hub: append a message frame (saying "offset":0) to the user's
    // stream and publish it to every node, this one included; answers
    // whether it was stored and whether the user is online elsewhere
    // (another node got it, or P`online` has the user)
    caf::replies_to<publish_atom, user_id, payload>::with<bool, bool>,
    // from the channels actor: the same for a channel, answering the offset
    // (an error when Redis is down)
    caf::replies_to<subscribe_atom, std::string>::with<bool>,
    caf::reacts_to<unsub_atom, std::string>,
    caf::replies_to<publish_atom, std::string, payload>::with<std::uint64_t>,
    // a stream's position and kept entries (an error when Redis is down)
    caf::replies_to<read_atom, user_id, read_request>::with<stream_read>,
    caf::replies_to<read_atom, std::string, read_request>::with<stream_read>,
    // where channel entries go (sent once at start)
    caf::reacts_to<feed_atom, cluster_channels_actor>,
    // from the subscriber: one message of a subscribed channel
    caf::reacts_to<remote_atom, std::string, std::string>,
    caf::reacts_to<redis_state_atom, bool>>;

// One per node: who is connected here, and routing to them.
using hub_actor = caf::typed_actor<
    // admit a connection, recovering its user's messages from a position if
    // asked; on `admitted` also what its welcome says
    caf::replies_to<register_atom, user_id, connection_actor,
                    recovery_request>::with<admission, welcome_info>,
    // deliver each message from `from` ("42" or "server") to every connection
    // of its recipient, in order; answers each in the same order, all at once
    caf::replies_to<route_atom, std::string, outgoing_batch>::with<routed_batch>,
    // timers the hub sends itself
    caf::reacts_to<ping_atom>, caf::reacts_to<sweep_atom>,
    // close every connection with 1001; answers once all are gone
    caf::replies_to<shutdown_atom>::with<bool>,
    // cluster mode: the cluster actor, sent once at start (never in standalone)
    caf::reacts_to<cluster_atom, cluster_actor>,
    // cluster mode: an entry of a local user's stream from the feed, with
    // its epoch; the pub/sub link came back (entries may be lost)
    caf::reacts_to<remote_atom, user_id, std::string, stream_entry>,
    caf::reacts_to<resync_atom>,
    // cluster mode: its own timer: keep the streams of users connected here
    caf::reacts_to<heartbeat_atom>>;

// User online/offline with the grace period, queries and watchers.
using presence_actor = caf::typed_actor<
    caf::reacts_to<connected_atom, user_id>, caf::reacts_to<disconn_atom, user_id>,
    // the grace timer of a user, valid only while its epoch is current
    caf::reacts_to<grace_atom, user_id, std::uint64_t>,
    // its own timer while grace periods are held (a handshake backlog)
    caf::reacts_to<hold_atom>, caf::replies_to<online_atom, user_id>::with<bool>,
    // which of these users are online
    caf::replies_to<query_atom, user_list>::with<user_list>,
    // online, and the true number of open connections
    caf::replies_to<count_atom, user_id>::with<bool, std::uint64_t>,
    // an empty answer, or why the watch was refused as a whole
    caf::replies_to<watch_atom, connection_actor, user_list>::with<std::string>,
    caf::reacts_to<unwatch_atom, connection_actor, user_list>,
    // cluster mode: a transition from the P`presence` channel
    // (forwarded by the cluster actor) for the watchers
    caf::reacts_to<event_atom, user_id, bool>,
    // cluster mode: Redis up/down, from the redis actor
    caf::reacts_to<redis_state_atom, bool>,
    // cluster mode: its own heartbeat timer
    caf::reacts_to<heartbeat_atom>,
    // cluster mode: remove this node from Redis (graceful
    // shutdown); answers true once done or given up
    caf::replies_to<withdraw_atom>::with<bool>>;

} // namespace hubnode
