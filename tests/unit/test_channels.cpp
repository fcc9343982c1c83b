#include "src/base/log.hpp"

#include "actors/channels.hpp"
#include "actors/cluster_channels.hpp"
#include "actors/connection.hpp"
#include "actors/hub.hpp"
#include "actors/presence.hpp"
#include "src/wire/channel_name.hpp"
#include "src/wire/protocol.hpp"
#include "tests/unit/actor_fixture.hpp"
#include "tests/unit/stream_helpers.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;
using offsets = std::vector<std::int64_t>;

channel_grants grants(strings names) {
  return std::make_shared<const strings>(std::move(names));
}

std::string code_of(const inbound& in) {
  return in.type == inbound::kind::invalid ? in.error_code : "";
}

} // namespace

TEST_CASE("channels: the name rule") {
  CHECK(valid_channel_name("a"));
  CHECK(valid_channel_name("Room_1-2.x:y"));
  CHECK(valid_channel_name(std::string(128, 'x')));
  CHECK(!valid_channel_name(""));
  CHECK(!valid_channel_name(std::string(129, 'x')));
  for (auto bad : {"a b", "a/b", "a*", "é", "a\n", "a%20"})
    CHECK_MESSAGE(!valid_channel_name(bad), bad);
}

TEST_CASE("channels: the claim allows exact names and prefixes ending in *") {
  CHECK(channel_allowed(nullptr, "anything"));
  CHECK(!channel_allowed(grants({}), "a"));
  auto some = grants({"room:*", "lobby"});
  CHECK(channel_allowed(some, "lobby"));
  CHECK(channel_allowed(some, "room:"));
  CHECK(channel_allowed(some, "room:7"));
  CHECK(!channel_allowed(some, "lobby2"));
  CHECK(!channel_allowed(some, "room"));
  CHECK(!channel_allowed(some, "xroom:1"));
  CHECK(channel_allowed(grants({"*"}), "x"));
}

TEST_CASE("channels: parsing subscribe, unsubscribe and publish") {
  auto sub = protocol::parse_request(
      R"({"type":"subscribe","channel":"c","ref":"r","recover":{"offset":3,"epoch":"E"}})");
  REQUIRE(sub.type == inbound::kind::subscribe);
  CHECK(sub.channel == "c");
  CHECK(sub.ref == "r");
  REQUIRE(sub.recover);
  CHECK(sub.recover->offset == 3u);
  CHECK(sub.recover->epoch == "E");
  CHECK(!protocol::parse_request(R"({"type":"subscribe","channel":"c"})").recover);
  auto unsub = protocol::parse_request(R"({"type":"unsubscribe","channel":"c"})");
  CHECK(unsub.type == inbound::kind::unsubscribe);
  auto pub = protocol::parse_request(R"({"type":"publish","channel":"c","data":1.50})");
  REQUIRE(pub.type == inbound::kind::publish);
  CHECK(pub.data == "1.50");
  CHECK(code_of(protocol::parse_request(R"({"type":"subscribe"})")) == "bad_request");
  CHECK(code_of(protocol::parse_request(R"({"type":"publish","channel":1,"data":1})")) ==
        "bad_request");
  CHECK(code_of(protocol::parse_request(R"({"type":"unsubscribe","channel":"a b"})")) ==
        "bad_channel");
  CHECK(code_of(protocol::parse_request(R"({"type":"publish","channel":"c"})")) ==
        "bad_request");
  for (auto recover : {R"("x")", R"({"offset":-1,"epoch":"E"})", R"({"offset":1})",
                       R"({"offset":1,"epoch":""})", R"({"offset":1.5,"epoch":"E"})"}) {
    CAPTURE(recover);
    auto text = std::string{R"({"type":"subscribe","channel":"c","ref":"r","recover":)"} +
                recover + "}";
    auto in = protocol::parse_request(text);
    CHECK(code_of(in) == "bad_request");
    CHECK(in.ref == "r");
  }
}

TEST_CASE("channels: encoding the server frames") {
  CHECK(
      protocol::subscribed("c", "r", true, {"E", 4}, true) ==
      R"({"type":"subscribed","channel":"c","ref":"r","epoch":"E","offset":4,"recovered":true})");
  CHECK(protocol::subscribed("c", "", false, {"E", 0}) ==
        R"({"type":"subscribed","channel":"c","epoch":"E","offset":0})");
  CHECK(protocol::unsubscribed("c", "r", true, "client") ==
        R"({"type":"unsubscribed","channel":"c","ref":"r","reason":"client"})");
  CHECK(protocol::published("c", "r", true, "i", 2) ==
        R"({"type":"published","channel":"c","ref":"r","id":"i","offset":2})");
  auto p = protocol::publication("c", "i", 2, "7", "[1.50]", 9);
  CHECK(
      p ==
      R"({"type":"publication","channel":"c","id":"i","offset":2,"from":"7","data":[1.50],"ts":9})");
  CHECK(
      protocol::history("c", {"E", 2}, {make_payload(p)}) ==
      R"({"channel":"c","epoch":"E","offset":2,"publications":[{"id":"i","offset":2,"from":"7","data":[1.50],"ts":9}]})");
  CHECK(protocol::history("c", {"E", 0}, {}) ==
        R"({"channel":"c","epoch":"E","offset":0,"publications":[]})");
}

namespace {

struct channels_fixture : actor_fixture {
  channels_actor channels = spawn_channels(sys, settings(), st);

  ~channels_fixture() { kill(channels); }

  static hub_settings settings() {
    auto result = make_hub_settings(node_options{});
    result.node_id = "n1";
    result.history_size = 3;
    result.ping_interval = 1000h;
    result.sweep_interval = 1000h;
    return result;
  }

  static channel_request on(std::string channel, recovery_request recover = {}) {
    channel_request req;
    req.channel = std::move(channel);
    req.recover = std::move(recover);
    return req;
  }

  std::shared_ptr<probe_log> subscriber(const std::string& channel = "c",
                                        recovery_request recover = {}) {
    auto log = std::make_shared<probe_log>();
    auto conn = spawn_probe(log);
    send(channels, subscribe_atom::value, conn, on(channel, std::move(recover)));
    probes.push_back(conn);
    return log;
  }

  std::uint64_t publish(std::string data, const std::string& channel = "c") {
    auto reply = request<std::string, std::uint64_t>(channels, publish_atom::value,
                                                     channel, std::move(data));
    REQUIRE(reply->has_value());
    return std::get<1>(**reply);
  }

  std::vector<connection_actor> probes;
};

boost::json::object first(const probe_log& log) {
  REQUIRE(!log.delivered.empty());
  return parse(log.delivered.front());
}

} // namespace

TEST_CASE_FIXTURE(channels_fixture,
                  "channels actor: one frame for all subscribers, in offset order") {
  auto a = subscriber();
  auto b = subscriber();
  auto other = subscriber("d");
  CHECK(first(*a).at("type") == "subscribed");
  CHECK(first(*a).at("offset") == 0);
  CHECK(!first(*a).contains("recovered"));
  CHECK(publish("1") == 1u);
  CHECK(publish("2") == 2u);
  CHECK(publish("3") == 3u);
  CHECK(publication_offsets(*a) == offsets{1, 2, 3});
  CHECK(publication_offsets(*b) == offsets{1, 2, 3});
  CHECK(publication_offsets(*other).empty());
  REQUIRE(a->delivered.size() == 4);
  for (std::size_t i = 1; i < 4; ++i)
    CHECK(a->delivered[i].get() == b->delivered[i].get()); // serialised once
  CHECK(parse(a->delivered[1]).at("from") == "server");
  CHECK(st.channels_active == 2);
  CHECK(st.subscriptions_active == 3);
  CHECK(st.publications == 3u);
}

TEST_CASE_FIXTURE(channels_fixture,
                  "channels actor: a connection's publish answers published after "
                  "the publication") {
  auto log = std::make_shared<probe_log>();
  auto conn = spawn_probe(log);
  send(channels, subscribe_atom::value, conn, on("c"));
  auto req = on("c");
  req.ref = "p";
  req.has_ref = true;
  req.data = R"({"x":1})";
  send(channels, publish_atom::value, conn, user_id{7}, req);
  REQUIRE(types_of(log->delivered) == strings{"subscribed", "publication", "published"});
  CHECK(parse(log->delivered[1]).at("from") == "7");
  auto published = parse(log->delivered[2]);
  CHECK(published.at("ref") == "p");
  CHECK(published.at("offset") == 1);
  CHECK(published.at("id") == parse(log->delivered[1]).at("id"));
  kill(conn);
}

TEST_CASE_FIXTURE(channels_fixture,
                  "channels actor: a recovery racing a live publication: no gap, "
                  "no duplicate") {
  auto gone = subscriber();
  publish("1");
  auto epoch = std::string{first(*gone).at("epoch").as_string()};
  kill(probes.back());
  CHECK(st.subscriptions_active == 0);
  publish("2");
  publish("3");
  for (bool live_first : {false, true}) {
    CAPTURE(live_first);
    auto log = std::make_shared<probe_log>();
    auto conn = spawn_probe(log);
    probes.push_back(conn);
    // the first round's publication makes the second's top one higher
    std::int64_t from = live_first ? 2 : 1;
    std::int64_t last = live_first ? 5 : 4;
    // both in the mailbox before the actor runs, in either order
    if (live_first)
      caf::anon_send(channels, publish_atom::value, std::string{"c"}, std::string{"0"});
    caf::anon_send(channels, subscribe_atom::value, conn,
                   on("c", stream_position{epoch, static_cast<std::uint64_t>(from)}));
    if (!live_first)
      caf::anon_send(channels, publish_atom::value, std::string{"c"}, std::string{"0"});
    run();
    auto sub = first(*log);
    CHECK(sub.at("recovered") == true);
    offsets expected;
    for (auto o = from + 1; o <= last; ++o)
      expected.push_back(o);
    CHECK(publication_offsets(*log) == expected);
    kill(conn);
  }
}

TEST_CASE_FIXTURE(channels_fixture,
                  "channels actor: another epoch or lost entries are not recovered") {
  auto gone = subscriber();
  auto epoch = std::string{first(*gone).at("epoch").as_string()};
  for (int i = 0; i < 5; ++i)
    publish("0");
  for (auto from : {stream_position{"other", 4}, stream_position{epoch, 1},
                    stream_position{epoch, 9}}) {
    auto log = subscriber("c", from);
    CHECK(first(*log).at("recovered") == false);
    CHECK(first(*log).at("offset") == 5);
    CHECK(log->delivered.size() == 1);
  }
  auto log = subscriber("c", stream_position{epoch, 2}); // 3 missed, 3 kept
  CHECK(first(*log).at("recovered") == true);
  CHECK(publication_offsets(*log) == offsets{3, 4, 5});
  CHECK(st.recovered == 1u);
  CHECK(st.not_recovered == 3u);
}

TEST_CASE_FIXTURE(channels_fixture,
                  "channels actor: unsubscribe stops publications; an exit cleans up") {
  auto log = std::make_shared<probe_log>();
  auto conn = spawn_probe(log);
  send(channels, subscribe_atom::value, conn, on("c"));
  send(channels, subscribe_atom::value, conn, on("d"));
  auto req = on("c");
  req.ref = "u";
  req.has_ref = true;
  send(channels, unsub_atom::value, conn, req);
  publish("1", "c");
  publish("2", "d");
  REQUIRE(types_of(log->delivered) ==
          strings{"subscribed", "subscribed", "unsubscribed", "publication"});
  auto gone = parse(log->delivered[2]);
  CHECK(gone.at("reason") == "client");
  CHECK(gone.at("ref") == "u");
  CHECK(parse(log->delivered[3]).at("channel") == "d");
  CHECK(st.subscriptions_active == 1);
  kill(conn);
  CHECK(st.subscriptions_active == 0);
  CHECK(st.channels_active == 0);
  publish("3", "d"); // nothing left to send to
}

TEST_CASE_FIXTURE(channels_fixture, "channels actor: history after an offset, capped") {
  for (int i = 1; i <= 5; ++i)
    publish(std::to_string(i));
  auto history = [&](std::optional<std::uint64_t> since, std::size_t limit) {
    auto reply = request<std::string>(channels, query_atom::value,
                                      history_request{"c", since, limit});
    REQUIRE(reply->has_value());
    auto body = boost::json::parse(std::get<0>(**reply)).as_object();
    CHECK(body.at("offset") == 5);
    offsets result;
    for (auto& p : body.at("publications").as_array())
      result.push_back(p.at("offset").as_int64());
    return result;
  };
  CHECK(history(std::nullopt, 100) == offsets{3, 4, 5});
  CHECK(history(std::nullopt, 2) == offsets{4, 5});
  CHECK(history(0, 2) == offsets{3, 4});
  CHECK(history(3, 100) == offsets{4, 5});
  CHECK(history(5, 100).empty());
  CHECK(history(99, 100).empty());
}

namespace {

struct connection_channels_fixture : channels_fixture {
  connection_settings_ptr cfg = std::make_shared<const connection_settings>(make());
  presence_actor presence = spawn_presence(sys, presence_with_grace(100ms), st);
  hub_actor hub = spawn_hub(sys, settings(), presence, st);

  ~connection_channels_fixture() { kill(hub, presence); }

  static connection_settings make() {
    auto result = make_connection_settings(node_options{});
    result.node_id = "n1";
    result.max_channels = 2;
    result.rate_limit = 1000;
    return result;
  }

  std::pair<std::shared_ptr<fake_transport>, connection_actor>
  open(channels_actor with, channel_grants allowed = nullptr) {
    auto socket = std::make_shared<fake_transport>();
    auto conn = spawn_connection(sys, cfg, hub, presence, st, socket, 9, "192.0.2.1:1",
                                 std::nullopt, std::nullopt, with, std::move(allowed));
    run();
    send(conn, upgraded_atom::value);
    return {socket, conn};
  }

  static inbound request(inbound::kind type, std::string channel) {
    auto in = request_of(type, "r");
    in.channel = std::move(channel);
    return in;
  }

  // The code of every error frame after the welcome, or the type of others.
  static strings answers(const fake_transport& socket) {
    strings result;
    auto frames = socket.frames();
    for (std::size_t i = 1; i < frames.size(); ++i) {
      auto f = parse(frames[i]);
      result.push_back(f.at("type") == "error" ? std::string{f.at("code").as_string()}
                                               : std::string{f.at("type").as_string()});
    }
    return result;
  }
};

} // namespace

TEST_CASE_FIXTURE(connection_channels_fixture,
                  "connection: channel checks in order, at most max-per-connection") {
  auto [socket, conn] = open(channels, grants({"c*"}));
  using k = inbound::kind;
  send(conn, frame_atom::value,
       inbound_batch{request(k::publish, "c1"), request(k::subscribe, "x"),
                     request(k::subscribe, "c1"), request(k::subscribe, "c1"),
                     request(k::subscribe, "c2"), request(k::subscribe, "c3"),
                     request(k::unsubscribe, "c1"), request(k::subscribe, "c3"),
                     request(k::unsubscribe, "c1")});
  // The connection answers the refusals in this turn, the channels actor the
  // rest after it: each in the order asked.
  CHECK(answers(*socket) == strings{"not_subscribed", "forbidden", "already_subscribed",
                                    "too_many_subscriptions", "not_subscribed",
                                    "subscribed", "subscribed", "unsubscribed",
                                    "subscribed"});
  kill(conn);
  CHECK(st.subscriptions_active == 0);
}

TEST_CASE_FIXTURE(connection_channels_fixture,
                  "connection: in cluster mode with Redis down a subscribe ends "
                  "unavailable") {
  // Redis down from the start: the channels actor asks its cluster nothing.
  auto [socket, conn] = open(spawn_cluster_channels(sys, settings(), {}, st));
  using k = inbound::kind;
  send(conn, frame_atom::value, inbound_batch{request(k::subscribe, "c")});
  // The subscription ended: the connection no longer holds it.
  send(conn, frame_atom::value, inbound_batch{request(k::publish, "c")});
  CHECK(answers(*socket) == strings{"unavailable", "not_subscribed"});
  kill(conn);
}
