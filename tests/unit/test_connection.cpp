#include "src/base/log.hpp"

#include "actors/connection.hpp"
#include "actors/hub.hpp"
#include "actors/presence.hpp"
#include "src/base/close_code.hpp"
#include "tests/unit/actor_fixture.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;
using codes = std::vector<std::uint16_t>;

std::uint64_t closed(const stats& st, close_reason why) {
  return st.connections_closed[static_cast<int>(why)];
}

std::uint64_t closed_total(const stats& st) {
  std::uint64_t total = 0;
  for (auto& n : st.connections_closed)
    total += n;
  return total;
}

std::uint64_t dropped(const stats& st, drop_reason why) {
  return st.messages_dropped[static_cast<int>(why)];
}

struct client {
  std::shared_ptr<fake_transport> socket;
  connection_actor conn;
};

struct connection_fixture : actor_fixture {
  connection_settings_ptr cfg =
      std::make_shared<const connection_settings>(make_settings());
  hub_settings hub_cfg = make_hub_settings();
  presence_actor presence = spawn_presence(sys, presence_with_grace(100ms), st);
  hub_actor hub = spawn_hub(sys, hub_cfg, presence, st);

  // Connections left open hold the hub and presence, which hold them: in the
  // node the hub and presence are stopped at exit, which breaks that cycle;
  // here it is the fixture's job, or every test leaks its actors.
  ~connection_fixture() { kill(hub, presence); }

  static connection_settings make_settings() {
    connection_settings result;
    result.node_id = "n1";
    result.idle_timeout = 60s;
    result.send_queue_limit = 1000;
    result.rate_limit = 2;
    result.flood_close_after = 3s;
    return result;
  }

  // Timers far away, so that only the tests about them see them fire.
  static hub_settings make_hub_settings() {
    auto result = hubnode::make_hub_settings(node_options{});
    result.node_id = "n1";
    result.max_connections = 3;
    result.ping_interval = 1000h;
    result.sweep_interval = 1000h;
    return result;
  }

  // With a `lifetime`, as with a token that expires after it.
  client connect(user_id user, std::optional<caf::timespan> lifetime = std::nullopt) {
    auto socket = std::make_shared<fake_transport>();
    auto conn = spawn_connection(sys, cfg, hub, presence, st, socket, user, "192.0.2.1:1",
                                 lifetime);
    run();
    return {socket, conn};
  }

  // Connected, upgraded, and its welcome written (with the upgrade).
  client open(user_id user, std::optional<caf::timespan> lifetime = std::nullopt) {
    auto c = connect(user, lifetime);
    REQUIRE(c.socket->accepts == 1);
    send(c.conn, upgraded_atom::value);
    REQUIRE(c.socket->writes.size() == 1);
    return c;
  }

  // The socket wrote everything handed to it.
  void written(const client& c) { c.socket->acknowledged = c.socket->writes.size(); }

  void frame(const client& c, inbound in) {
    send(c.conn, frame_atom::value, inbound_batch{std::move(in)});
  }

  // Every frame the client got, all of it written.
  strings drain(const client& c) {
    written(c);
    return types_of(c.socket->frames());
  }

  payload filler(std::size_t bytes) { return make_payload(std::string(bytes, ' ')); }
};

} // namespace

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: admitted, the welcome goes with the upgrade") {
  auto c = connect(7);
  CHECK(c.socket->accepts == 1);
  CHECK(st.connections_opened == 1);
  REQUIRE(c.socket->writes.size() == 1); // handed over with accept()
  REQUIRE(c.socket->writes[0].size() == 1);
  auto welcome = parse(c.socket->writes[0][0]);
  CHECK(welcome.at("type") == "welcome");
  CHECK(welcome.at("userId") == "7");
  CHECK(welcome.at("connectionId") == "n1-c1");
  CHECK(welcome.at("node") == "n1");
  send(c.conn, upgraded_atom::value);
  CHECK(c.socket->writes.size() == 1);
}

namespace {

// A cluster whose subscriptions Redis confirms (true) or fails only when the
// test says so: (confirm, i, ok) answers the i-th.
struct held_subscriptions {
  std::vector<caf::typed_response_promise<bool>> promises;
};

using confirm_atom = caf::atom_constant<caf::atom("confirm")>;
using holding_cluster_actor =
    cluster_actor::extend<caf::reacts_to<confirm_atom, std::size_t, bool>>;

holding_cluster_actor::behavior_type
holding_cluster(holding_cluster_actor::pointer self,
                std::shared_ptr<held_subscriptions> held) {
  return {
      [self, held](subscribe_atom, user_id) {
        held->promises.push_back(self->make_response_promise<bool>());
        return held->promises.back();
      },
      [](unsub_atom, user_id) {},
      [](publish_atom, user_id, const payload&) {
        return caf::make_result(false, false);
      },
      [](subscribe_atom, const std::string&) { return false; },
      [](unsub_atom, const std::string&) {},
      [](publish_atom, const std::string&, const payload&) { return std::uint64_t{0}; },
      [](read_atom, user_id, const read_request&) { return stream_read{}; },
      [](read_atom, const std::string&, const read_request&) { return stream_read{}; },
      [](feed_atom, const cluster_channels_actor&) {},
      [](remote_atom, const std::string&, const std::string&) {},
      [](redis_state_atom, bool) {},
      [held](confirm_atom, std::size_t i, bool ok) {
        // Moved out, so that no promise keeps its actor alive.
        auto rp = std::move(held->promises.at(i));
        rp.deliver(ok);
      },
  };
}

} // namespace

// SPEC section 3, "Timing": a message sent to the user after the welcome
// reaches it from every node, so this node hears the user's channel first.
TEST_CASE_FIXTURE(connection_fixture,
                  "connection: in cluster mode the welcome waits for the subscription") {
  auto held = std::make_shared<held_subscriptions>();
  auto cluster = sys.spawn(holding_cluster, held);
  send(hub, cluster_atom::value, cluster_actor{cluster});
  auto c = connect(7);
  REQUIRE(held->promises.size() == 1);
  CHECK(c.socket->accepts == 0);
  send(cluster, confirm_atom::value, std::size_t{0}, true);
  CHECK(c.socket->accepts == 1);
  // Redis down: the cluster answers false, and the welcome goes all the same.
  auto d = connect(8);
  REQUIRE(held->promises.size() == 2);
  CHECK(d.socket->accepts == 0);
  send(cluster, confirm_atom::value, std::size_t{1}, false);
  CHECK(d.socket->accepts == 1);
  REQUIRE(d.socket->writes.size() == 1);
  CHECK(type_of(d.socket->writes[0][0]) == "welcome");
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: a message routed before the upgrade follows the welcome") {
  auto c = connect(7);
  route_all(hub, "server", outgoing_batch{{7, "1"}});
  CHECK(c.socket->writes.size() == 1); // the welcome only
  send(c.conn, upgraded_atom::value);
  CHECK(drain(c) == strings{"welcome", "message"});
}

TEST_CASE_FIXTURE(connection_fixture, "connection: rejected by the hub, never counted") {
  open(1);
  open(2);
  open(3);
  auto c = connect(4);
  CHECK(c.socket->rejects == std::vector<admission>{admission::over_capacity});
  CHECK(c.socket->accepts == 0);
  CHECK(st.connections_opened == 3);
  CHECK(st.connections_active == 3);
  CHECK(closed_total(st) == 0);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: the client closes during admission, counted once") {
  auto socket = std::make_shared<fake_transport>();
  auto conn = spawn_connection(sys, cfg, hub, presence, st, socket, 7, "192.0.2.1:1");
  caf::anon_send(conn, closed_atom::value, close_reason::client);
  run();
  CHECK(st.connections_opened == 1);
  CHECK(closed(st, close_reason::client) == 1);
  CHECK(closed_total(st) == 1);
  CHECK(st.connections_active == 0);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: the client closes, the hub unregisters it") {
  auto c = open(7);
  send(c.conn, closed_atom::value, close_reason::client);
  CHECK(c.socket->closes.empty());
  CHECK(closed(st, close_reason::client) == 1);
  CHECK(st.connections_active == 0);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: a closed connection is freed while the node runs") {
  auto c = open(7);
  open(8);
  frame(c, ids_request(inbound::kind::watch, {8}));
  frame(c, send_request(8, R"({"hi":true})"));
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(c.conn);
  send(c.conn, closed_atom::value, close_reason::client);
  c.conn = nullptr;
  run();
  CHECK(weak.lock() == nullptr);
}

TEST_CASE_FIXTURE(connection_fixture, "connection: send is routed and acknowledged") {
  auto sender = open(7);
  auto receiver = open(8);
  frame(sender, send_request(8, R"({"hi":true})", "r1"));
  CHECK(st.messages_received == 1);
  REQUIRE(sender.socket->frames().size() == 2);
  auto ack = parse(sender.socket->frames()[1]);
  CHECK(ack.at("type") == "ack");
  CHECK(ack.at("ref") == "r1");
  CHECK(ack.at("online") == true);
  REQUIRE(receiver.socket->frames().size() == 2);
  auto message = parse(receiver.socket->frames()[1]);
  CHECK(message.at("type") == "message");
  CHECK(message.at("from") == "7");
  CHECK(message.at("id") == ack.at("id"));
  CHECK(message.at("data") == boost::json::parse(R"({"hi":true})"));
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: send to oneself reaches oneself, then the ack") {
  auto c = open(7);
  frame(c, send_request(7, "1"));
  CHECK(drain(c) == strings{"welcome", "message", "ack"});
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: an invalid request is answered, the connection stays") {
  auto c = open(7);
  auto in = request_of(inbound::kind::invalid, "r2");
  in.error_code = "unknown_type";
  in.error_message = "unknown type";
  frame(c, in);
  REQUIRE(c.socket->frames().size() == 2);
  auto error = parse(c.socket->frames()[1]);
  CHECK(error.at("type") == "error");
  CHECK(error.at("code") == "unknown_type");
  CHECK(error.at("ref") == "r2");
  CHECK(c.socket->closes.empty());
}

TEST_CASE_FIXTURE(connection_fixture, "connection: ping is answered with pong") {
  auto c = open(7);
  frame(c, request_of(inbound::kind::ping, "p"));
  REQUIRE(c.socket->frames().size() == 2);
  auto pong = parse(c.socket->frames()[1]);
  CHECK(pong.at("type") == "pong");
  CHECK(pong.at("ref") == "p");
}

TEST_CASE_FIXTURE(
    connection_fixture,
    "connection: the requests of one read are answered in order, together") {
  auto c = open(7);
  send(c.conn, frame_atom::value,
       inbound_batch{request_of(inbound::kind::ping, "a"),
                     request_of(inbound::kind::ping, "b"),
                     request_of(inbound::kind::ping, "c")});
  REQUIRE(c.socket->writes.size() == 2); // the welcome, then the three pongs
  REQUIRE(c.socket->writes.back().size() == 3);
  strings refs;
  for (auto& pong : c.socket->writes.back())
    refs.push_back(parse(pong).at("ref").as_string().c_str());
  CHECK(refs == strings{"a", "b", "c"});
  CHECK(st.messages_received == 3);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: the messages of one read are routed and acked in order") {
  auto a = open(7);
  auto b = open(8);
  // 9 is nobody: its ack waits for presence, the one after it too.
  send(a.conn, frame_atom::value,
       inbound_batch{send_request(8, "1", "r1"), send_request(9, "2", "r2"),
                     request_of(inbound::kind::ping, "p"), send_request(8, "3", "r3")});
  auto frames = drain(a);
  REQUIRE(frames == strings{"welcome", "pong", "ack", "ack", "ack"});
  strings refs;
  std::vector<bool> online;
  for (std::size_t i = 2; i < 5; ++i) {
    auto ack = parse(a.socket->frames()[i]);
    refs.push_back(ack.at("ref").as_string().c_str());
    online.push_back(ack.at("online").as_bool());
  }
  CHECK(refs == strings{"r1", "r2", "r3"});
  CHECK(online == std::vector<bool>{true, false, true});
  CHECK(drain(b) == strings{"welcome", "message", "message"});
  CHECK(parse(b.socket->frames()[1]).at("data") == 1);
  CHECK(parse(b.socket->frames()[2]).at("data") == 3);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: a close ends the read: later requests are not served") {
  auto c = open(7);
  send(c.conn, deliver_atom::value, filler(990)); // in flight, never written
  // The first pong crosses the 1,000 bytes of the send queue.
  send(c.conn, frame_atom::value,
       inbound_batch{request_of(inbound::kind::ping, "a"),
                     request_of(inbound::kind::ping, "b")});
  CHECK(c.socket->closes == codes{close_code::policy});
  CHECK(st.messages_received == 1);
  CHECK(dropped(st, drop_reason::slow_consumer) == 1);
}

TEST_CASE_FIXTURE(connection_fixture, "connection: presence query and watch") {
  auto c = open(7);
  open(8);
  frame(c, ids_request(inbound::kind::presence, {8, 9}));
  REQUIRE(c.socket->frames().size() == 2);
  auto answer = parse(c.socket->frames()[1]);
  CHECK(answer.at("type") == "presence");
  CHECK(answer.at("users") == boost::json::parse(R"({"8":true,"9":false})"));
  written(c);
  frame(c, ids_request(inbound::kind::watch, {9}));
  CHECK(c.socket->frames().size() == 2);
  open(9);
  REQUIRE(c.socket->frames().size() == 3);
  auto changed = parse(c.socket->frames()[2]);
  CHECK(changed.at("type") == "presence_changed");
  CHECK(changed.at("userId") == "9");
  CHECK(changed.at("online") == true);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: frames handed to the socket count until written") {
  auto c = open(7);
  send(c.conn, deliver_atom::value, filler(400));
  send(c.conn, deliver_atom::value, filler(300));
  CHECK(c.socket->writes.size() == 3); // each turn's frames handed over at once
  CHECK(st.send_queue_bytes_max == 700);
  written(c);
  send(c.conn, deliver_atom::value, filler(600)); // 700 + 600 would be over
  CHECK(c.socket->closes.empty());
  CHECK(st.send_queue_bytes_max == 700);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: a consumer that keeps up is never slow") {
  auto c = open(7);
  for (int i = 0; i < 10; ++i) {
    send(c.conn, deliver_atom::value, filler(400));
    written(c);
  }
  CHECK(c.socket->closes.empty());
  CHECK(c.socket->writes.size() == 11);
  CHECK(st.send_queue_bytes_max == 400);
}

TEST_CASE_FIXTURE(connection_fixture, "connection: a slow consumer is closed 1008 once") {
  auto c = open(7);
  send(c.conn, deliver_atom::value, filler(400)); // in flight, never written
  send(c.conn, deliver_atom::value, filler(400));
  CHECK(c.socket->closes.empty());
  // Both in one batch: the close ends the actor before it sees the second.
  caf::anon_send(c.conn, deliver_atom::value, filler(400));
  caf::anon_send(c.conn, closed_atom::value, close_reason::client);
  run();
  CHECK(c.socket->closes == codes{close_code::policy});
  CHECK(dropped(st, drop_reason::slow_consumer) == 1);
  CHECK(closed(st, close_reason::slow_consumer) == 1);
  CHECK(closed_total(st) == 1);
  CHECK(st.send_queue_bytes_max == 1200);
  CHECK(st.connections_active == 0);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: frames queued in one turn leave in one write") {
  auto c = open(7);
  // All three are in the mailbox before the actor runs.
  for (int i = 0; i < 3; ++i)
    caf::anon_send(c.conn, deliver_atom::value, filler(10));
  run();
  REQUIRE(c.socket->writes.size() == 2); // the welcome, then the three
  CHECK(c.socket->writes.back().size() == 3);
}

TEST_CASE_FIXTURE(
    connection_fixture,
    "connection: the frame that crosses the limit is dropped, not written") {
  auto c = open(7);
  // One turn: the first two are queued, the third crosses the 1,000 bytes.
  for (int i = 0; i < 3; ++i)
    caf::anon_send(c.conn, deliver_atom::value, filler(400));
  run();
  REQUIRE(c.socket->writes.size() == 2);
  CHECK(c.socket->writes.back().size() == 2);
  CHECK(c.socket->closes == codes{close_code::policy});
  CHECK(dropped(st, drop_reason::slow_consumer) == 1);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: frames queued before a close go out before it") {
  auto c = open(7);
  caf::anon_send(c.conn, deliver_atom::value, filler(10));
  caf::anon_send(c.conn, violation_atom::value, close_code::too_big);
  run();
  REQUIRE(c.socket->writes.size() == 2);
  CHECK(c.socket->writes.back().size() == 1);
  CHECK(c.socket->closes == codes{close_code::too_big});
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: rate_limited, then closed 1008 when the flood goes on") {
  auto c = open(7);
  for (int i = 0; i < 4; ++i) // the burst: twice the rate
    frame(c, request_of(inbound::kind::ping));
  frame(c, request_of(inbound::kind::ping, "over"));
  auto frames = drain(c);
  CHECK(frames == strings{"welcome", "pong", "pong", "pong", "pong", "error"});
  auto error = parse(c.socket->frames().back());
  CHECK(error.at("code") == "rate_limited");
  CHECK(error.at("ref") == "over");
  CHECK(dropped(st, drop_reason::rate_limited) == 1);
  // Twice the rate: every other frame gets through, the flood goes on.
  for (int i = 0; i < 11; ++i) {
    advance(250ms);
    frame(c, request_of(inbound::kind::ping));
  }
  CHECK(c.socket->closes.empty());
  drain(c);
  advance(250ms); // 3 s after the first rate_limited answer
  frame(c, request_of(inbound::kind::ping));
  CHECK(c.socket->closes.empty());
  frame(c, request_of(inbound::kind::ping));
  CHECK(c.socket->closes == codes{close_code::policy});
  CHECK(closed(st, close_reason::policy) == 1);
  CHECK(st.messages_received == 18);
}

TEST_CASE_FIXTURE(connection_fixture, "connection: a flood that stopped is forgiven") {
  auto c = open(7);
  for (int i = 0; i < 5; ++i)
    frame(c, request_of(inbound::kind::ping));
  advance(2s); // quiet, the bucket is full again
  for (int i = 0; i < 5; ++i)
    frame(c, request_of(inbound::kind::ping));
  advance(1500ms); // 3.5 s after the first flood, 1.5 s into the second
  for (int i = 0; i < 4; ++i)
    frame(c, request_of(inbound::kind::ping));
  CHECK(dropped(st, drop_reason::rate_limited) == 3);
  CHECK(c.socket->closes.empty());
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: a protocol violation closes with its code") {
  auto c = open(7);
  send(c.conn, violation_atom::value, close_code::too_big);
  CHECK(c.socket->closes == codes{close_code::too_big});
  CHECK(closed(st, close_reason::policy) == 1);
  CHECK(st.connections_active == 0);
}

TEST_CASE_FIXTURE(connection_fixture, "connection: the hub's ping reaches the socket") {
  auto c = open(7);
  send(c.conn, ping_atom::value);
  CHECK(c.socket->pings == 1);
}

TEST_CASE_FIXTURE(connection_fixture, "connection: sweep closes only stale connections") {
  auto idle = open(7);
  auto active = open(8);
  auto talking = open(9);
  advance(40s);
  send(active.conn, activity_atom::value); // a pong
  frame(talking, request_of(inbound::kind::ping));
  advance(20s);
  send(hub, sweep_atom::value); // idle for exactly the timeout: not yet stale
  CHECK(idle.socket->closes.empty());
  advance(1s);
  send(hub, sweep_atom::value);
  CHECK(idle.socket->closes == codes{close_code::going_away});
  CHECK(active.socket->closes.empty());
  CHECK(talking.socket->closes.empty());
  CHECK(st.stale_closed == 1);
  CHECK(closed(st, close_reason::stale) == 1);
  CHECK(st.connections_active == 2);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: shutdown closes every connection with 1001") {
  auto a = open(7);
  auto b = open(8);
  auto done = request<bool>(hub, shutdown_atom::value);
  CHECK(a.socket->closes == codes{close_code::going_away});
  CHECK(b.socket->closes == codes{close_code::going_away});
  CHECK(closed(st, close_reason::shutdown) == 2);
  CHECK(closed_total(st) == 2);
  CHECK(st.connections_active == 0);
  REQUIRE(done->has_value());
  CHECK(std::get<0>(**done));
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: a token that expires while open closes it with 1008") {
  auto c = open(7, caf::timespan{90s});
  auto& socket = c.socket;
  drain(c);
  auto plain = open(8); // no token expiry: no timer
  advance(89s);
  CHECK(socket->closes.empty());
  advance(1s);
  CHECK(socket->closes == codes{close_code::policy});
  CHECK(closed(st, close_reason::policy) == 1);
  CHECK(st.connections_active == 1);
  advance(1000s);
  CHECK(plain.socket->closes.empty());
  CHECK(socket->closes.size() == 1);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: a closed connection's token timer does not hold it") {
  auto c = open(7, caf::timespan{10h});
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(c.conn);
  send(c.conn, closed_atom::value, close_reason::client);
  c.conn = nullptr;
  advance(1min); // not the token's ten hours
  CHECK(weak.lock() == nullptr);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "connection: a token expired before the upgrade closes it at once") {
  auto c = connect(7, caf::timespan{-1s});
  CHECK(c.socket->closes == codes{close_code::policy});
  CHECK(closed(st, close_reason::policy) == 1);
  CHECK(st.connections_active == 0);
}

// -- recovery (SPEC section 8) ------------------------------------------------------

namespace {

struct recovery_fixture : connection_fixture {
  // The epoch of user 7's stream, after `n` messages to the user while it
  // had no connection.
  std::string missed(int n) {
    auto first = open(7);
    auto epoch = parse(first.socket->writes[0][0]).at("epoch").as_string();
    send(first.conn, closed_atom::value, close_reason::client);
    for (int i = 0; i < n; ++i)
      route_all(hub, "server", outgoing_batch{{7, std::to_string(i)}});
    return std::string{epoch};
  }

  // A reconnect that recovers from `from`, with a live message routed
  // before or after its registration reaches the hub.
  client reconnect_racing(stream_position from, bool live_first) {
    auto socket = std::make_shared<fake_transport>();
    auto route_live = [this] {
      sys.spawn([hub = hub](caf::event_based_actor* self) {
        self->request(hub, caf::infinite, route_atom::value, std::string{"server"},
                      outgoing_batch{{7, "\"live\""}})
            .then([](const routed_batch&) {});
      });
    };
    if (live_first)
      route_live();
    auto conn = spawn_connection(sys, cfg, hub, presence, st, socket, 7, "192.0.2.1:1",
                                 std::nullopt, recovery_request{std::move(from)});
    if (!live_first)
      route_live();
    run();
    send(conn, upgraded_atom::value);
    run();
    return {socket, conn};
  }
};

std::vector<std::uint64_t> message_offsets(const std::vector<payload>& frames) {
  std::vector<std::uint64_t> result;
  for (auto& frame : frames)
    if (type_of(frame) == "message")
      result.push_back(boost::json::value_to<std::uint64_t>(parse(frame).at("offset")));
  return result;
}

} // namespace

TEST_CASE_FIXTURE(recovery_fixture,
                  "connection: the replay follows the welcome, then live, each once") {
  for (bool live_first : {false, true}) {
    CAPTURE(live_first);
    auto epoch = missed(3);
    auto c = reconnect_racing(stream_position{epoch, 1}, live_first);
    auto frames = c.socket->frames();
    auto welcome = parse(frames[0]);
    CHECK(welcome.at("type") == "welcome");
    CHECK(welcome.at("recovered") == true);
    CHECK(welcome.at("epoch") == epoch.c_str());
    // The welcome's offset is where the replay ends; live ones follow it.
    auto last = boost::json::value_to<std::uint64_t>(welcome.at("offset"));
    CHECK(last == (live_first ? 4u : 3u));
    CHECK(message_offsets(frames) == std::vector<std::uint64_t>{2, 3, 4});
    kill(c.conn);
    hub = spawn_hub(sys, hub_cfg, presence, st); // a fresh node for the next round
  }
}

TEST_CASE_FIXTURE(recovery_fixture, "connection: not recovered, only live ones follow") {
  missed(2);
  auto c = reconnect_racing(stream_position{"other", 1}, false);
  auto frames = c.socket->frames();
  CHECK(parse(frames[0]).at("recovered") == false);
  CHECK(message_offsets(frames) == std::vector<std::uint64_t>{3});
}
