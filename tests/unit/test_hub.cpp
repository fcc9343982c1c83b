#include "src/log.hpp"

#include "actors/hub.hpp"
#include "actors/presence.hpp"
#include "tests/unit/actor_fixture.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using registration = std::tuple<admission, std::string>;

struct hub_fixture : actor_fixture {
  presence_actor presence = spawn_presence(sys, presence_settings{100ms}, st);
  hub_settings cfg = make_settings();
  hub_actor hub = spawn_hub(sys, cfg, presence, st);

  static hub_settings make_settings() {
    hub_settings result;
    result.node_id = "n1";
    result.max_connections = 4;
    result.max_connections_per_user = 3;
    result.ping_interval = 20s;
    result.sweep_interval = 30s;
    return result;
  }

  registration register_as(user_id user, const connection_actor& conn) {
    auto reply = request<admission, std::string>(hub, register_atom::value, user, conn);
    REQUIRE(reply->has_value());
    return **reply;
  }

  // A registered stand-in connection and what it receives.
  std::pair<connection_actor, std::shared_ptr<probe_log>> join(user_id user) {
    auto log = std::make_shared<probe_log>();
    auto conn = spawn_probe(log);
    REQUIRE(std::get<0>(register_as(user, conn)) == admission::admitted);
    return {conn, log};
  }

  std::tuple<std::string, bool> route(user_id to, std::string data) {
    auto reply = request<std::string, bool>(hub, route_atom::value, to, std::string{"42"},
                                            std::move(data));
    REQUIRE(reply->has_value());
    return **reply;
  }

  std::tuple<bool, std::uint64_t> presence_count(user_id user) {
    auto reply = request<bool, std::uint64_t>(presence, count_atom::value, user);
    REQUIRE(reply->has_value());
    return **reply;
  }
};

} // namespace

TEST_CASE_FIXTURE(hub_fixture, "hub: register, then DOWN is the unregistration") {
  auto conn = spawn_probe(std::make_shared<probe_log>());
  CHECK(register_as(7, conn) == registration{admission::admitted, "n1-c1"});
  CHECK(st.connections_active == 1);
  CHECK(st.connections_opened == 1);
  CHECK(st.users_online_local == 1);
  CHECK(presence_count(7) == std::tuple<bool, std::uint64_t>{true, 1});
  kill(conn);
  CHECK(st.connections_active == 0);
  CHECK(st.connections_opened == 1);
  CHECK(st.users_online_local == 0);
  // Presence was told: the user is in its grace period, with no connection.
  CHECK(presence_count(7) == std::tuple<bool, std::uint64_t>{true, 0});
}

TEST_CASE_FIXTURE(hub_fixture, "hub: connection ids are unique") {
  auto a = spawn_probe(std::make_shared<probe_log>());
  auto b = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<1>(register_as(7, a)) == "n1-c1");
  CHECK(std::get<1>(register_as(7, b)) == "n1-c2");
  CHECK(st.users_online_local == 1);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: the node-wide cap answers over_capacity") {
  for (user_id user = 1; user <= 4; ++user)
    join(user);
  auto extra = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<0>(register_as(5, extra)) == admission::over_capacity);
  CHECK(st.connections_active == 4);
  CHECK(st.connections_opened == 4);
  CHECK(st.handshakes_rejected[static_cast<int>(rejection::over_capacity)] == 1);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: the per-user cap answers too_many_connections") {
  for (int i = 0; i < 3; ++i)
    join(7);
  auto extra = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<0>(register_as(7, extra)) == admission::too_many_connections);
  CHECK(std::get<0>(register_as(8, extra)) == admission::admitted);
  CHECK(st.connections_active == 4);
  CHECK(st.handshakes_rejected[static_cast<int>(rejection::too_many_connections)] == 1);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: a freed slot can be used again") {
  join(1);
  join(2);
  join(3);
  auto [last, log] = join(4);
  kill(last);
  auto again = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<0>(register_as(5, again)) == admission::admitted);
}

TEST_CASE_FIXTURE(hub_fixture,
                  "hub: route delivers one shared payload to every connection") {
  auto [a, log_a] = join(7);
  auto [b, log_b] = join(7);
  auto [c, log_c] = join(7);
  auto [other, log_other] = join(8);
  auto [id, online] = route(7, R"({"x":1})");
  CHECK(id == "n1-m1");
  CHECK(online);
  REQUIRE(log_a->delivered.size() == 1);
  REQUIRE(log_b->delivered.size() == 1);
  REQUIRE(log_c->delivered.size() == 1);
  CHECK(log_b->delivered[0] == log_a->delivered[0]);
  CHECK(log_c->delivered[0] == log_a->delivered[0]);
  CHECK(log_other->delivered.empty());
  CHECK(st.messages_delivered == 3);
  auto frame = parse(log_a->delivered[0]);
  CHECK(frame.at("type") == "message");
  CHECK(frame.at("id") == "n1-m1");
  CHECK(frame.at("from") == "42");
  CHECK(frame.at("data") == boost::json::parse(R"({"x":1})"));
}

TEST_CASE_FIXTURE(hub_fixture, "hub: deliveries keep the order of the routes") {
  auto [conn, log] = join(7);
  for (int i = 0; i < 5; ++i)
    caf::anon_send(hub, route_atom::value, user_id{7}, std::string{"42"},
                   std::to_string(i));
  run();
  REQUIRE(log->delivered.size() == 5);
  for (int i = 0; i < 5; ++i)
    CHECK(parse(log->delivered[i]).at("data") == i);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: route to an unknown user is answered offline") {
  auto [id, online] = route(9, "1");
  CHECK(id == "n1-m1");
  CHECK_FALSE(online);
  CHECK(st.messages_delivered == 0);
}

TEST_CASE_FIXTURE(hub_fixture,
                  "hub: route to a user in the grace period is answered online") {
  auto [conn, log] = join(7);
  kill(conn);
  CHECK(std::get<1>(route(7, "1")));
  advance(100ms);
  CHECK_FALSE(std::get<1>(route(7, "1")));
}

TEST_CASE_FIXTURE(hub_fixture, "hub: pings and sweeps every connection on its timers") {
  auto [a, log_a] = join(7);
  auto [b, log_b] = join(8);
  advance(20s);
  CHECK(log_a->pings == 1);
  CHECK(log_b->pings == 1);
  CHECK(log_a->sweeps == 0);
  advance(10s);
  CHECK(log_a->sweeps == 1);
  CHECK(log_b->sweeps == 1);
  CHECK(st.sweeps == 1);
  advance(10s);
  advance(10s);
  advance(10s);
  CHECK(log_a->pings == 3);
  CHECK(log_a->sweeps == 2);
  CHECK(st.sweeps == 2);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: shutdown answers once the last connection is gone") {
  auto [a, log_a] = join(7);
  auto stubborn_log = std::make_shared<probe_log>();
  auto stubborn = spawn_probe(stubborn_log, true);
  REQUIRE(std::get<0>(register_as(8, stubborn)) == admission::admitted);
  auto done = request<bool>(hub, shutdown_atom::value);
  CHECK(log_a->shutdowns == 1);
  CHECK(stubborn_log->shutdowns == 1);
  CHECK(st.connections_active == 1);
  CHECK_FALSE(done->has_value());
  kill(stubborn);
  REQUIRE(done->has_value());
  CHECK(std::get<0>(**done));
  CHECK(st.connections_active == 0);
}

TEST_CASE_FIXTURE(hub_fixture, "hub: shutdown with no connection answers at once") {
  auto done = request<bool>(hub, shutdown_atom::value);
  REQUIRE(done->has_value());
  CHECK(std::get<0>(**done));
}

TEST_CASE_FIXTURE(hub_fixture, "hub: no registration after shutdown") {
  request<bool>(hub, shutdown_atom::value);
  auto late = spawn_probe(std::make_shared<probe_log>());
  CHECK(std::get<0>(register_as(7, late)) == admission::over_capacity);
  CHECK(st.connections_opened == 0);
}
