#include "src/base/log.hpp"

#include "src/wire/metrics.hpp"

#include <doctest/doctest.h>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

using namespace hubnode;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

// Series (name plus labels, as written) → value.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> result;
  for (const auto& line : lines_of(text)) {
    if (line.empty() || line[0] == '#')
      continue;
    auto space = line.rfind(' ');
    result[line.substr(0, space)] = line.substr(space + 1);
  }
  return result;
}

const std::vector<std::string> spec_names = {
    "hubnode_connections_active",
    "hubnode_connections_opened_total",
    "hubnode_connections_closed_total",
    "hubnode_handshakes_rejected_total",
    "hubnode_reconnects_total",
    "hubnode_users_online_local",
    "hubnode_messages_received_total",
    "hubnode_messages_delivered_total",
    "hubnode_messages_remote_total",
    "hubnode_messages_dropped_total",
    "hubnode_send_queue_bytes_max",
    "hubnode_sweeps_total",
    "hubnode_stale_closed_total",
    "hubnode_presence_transitions_total",
    "hubnode_redis_up",
    "hubnode_redis_errors_total",
    "hubnode_actors_running",
    "hubnode_recoveries_total",
};

bool is_counter(const std::string& name) {
  return name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
}

} // namespace

TEST_CASE("metrics: every SPEC metric has HELP, TYPE and a sample") {
  stats st;
  auto text = render_metrics(st, 0);
  for (const auto& name : spec_names) {
    CAPTURE(name);
    CHECK(text.find("# HELP " + name + " ") != std::string::npos);
    auto type = is_counter(name) ? "counter" : "gauge";
    CHECK(text.find("# TYPE " + name + " " + type + "\n") != std::string::npos);
    CHECK((text.find("\n" + name + " ") != std::string::npos ||
           text.find("\n" + name + "{") != std::string::npos));
  }
}

TEST_CASE("metrics: every line is well formed") {
  stats st;
  stats::bump(st.messages_received, 12);
  auto text = render_metrics(st, 7);
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  const std::regex help{R"(# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S.*)"};
  const std::regex type{R"(# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge))"};
  const std::regex sample{
      R"([a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"\})? -?[0-9]+)"};
  for (const auto& line : lines_of(text)) {
    CAPTURE(line);
    CHECK((std::regex_match(line, help) || std::regex_match(line, type) ||
           std::regex_match(line, sample)));
  }
}

TEST_CASE("metrics: each family is declared once, before its samples") {
  stats st;
  auto lines = lines_of(render_metrics(st, 0));
  std::map<std::string, int> types;
  std::string current;
  for (const auto& line : lines) {
    CAPTURE(line);
    if (line.rfind("# TYPE ", 0) == 0) {
      current = line.substr(7, line.find(' ', 7) - 7);
      CHECK(++types[current] == 1);
    } else if (line[0] != '#') {
      CHECK(line.rfind(current, 0) == 0);
    }
  }
}

TEST_CASE("metrics: every label value is present even when zero") {
  stats st;
  auto series = samples(render_metrics(st, 0));
  for (auto reason : {"client", "stale", "slow_consumer", "policy", "shutdown", "error"})
    CHECK(series.at(std::string{"hubnode_connections_closed_total{reason=\""} + reason +
                    "\"}") == "0");
  for (auto reason : {"validation", "unauthorized", "forbidden_origin", "over_capacity",
                      "too_many_connections", "timeout"})
    CHECK(series.at(std::string{"hubnode_handshakes_rejected_total{reason=\""} + reason +
                    "\"}") == "0");
  for (auto reason : {"rate_limited", "slow_consumer", "redis_down"})
    CHECK(series.at(std::string{"hubnode_messages_dropped_total{reason=\""} + reason +
                    "\"}") == "0");
  CHECK(series.at("hubnode_presence_transitions_total{state=\"online\"}") == "0");
  CHECK(series.at("hubnode_presence_transitions_total{state=\"offline\"}") == "0");
}

TEST_CASE("metrics: values reflect the stats") {
  stats st;
  stats::add(st.connections_active, 5);
  stats::bump(st.connections_opened, 9);
  st.closed(close_reason::slow_consumer);
  st.closed(close_reason::slow_consumer);
  st.closed(close_reason::shutdown);
  st.rejected(rejection::too_many_connections);
  st.rejected(rejection::timeout);
  stats::bump(st.reconnects, 3);
  stats::add(st.users_online_local, 4);
  stats::bump(st.messages_received, 100);
  stats::bump(st.messages_delivered, 200);
  stats::bump(st.messages_remote, 50);
  st.dropped(drop_reason::redis_down);
  st.queue_bytes_seen(4096);
  st.queue_bytes_seen(1024);
  stats::bump(st.sweeps, 6);
  stats::bump(st.stale_closed, 2);
  stats::bump(st.presence_online, 11);
  stats::bump(st.presence_offline, 10);
  stats::add(st.redis_up, 1);
  stats::bump(st.redis_errors, 8);
  stats::bump(st.recovered, 12);
  stats::bump(st.not_recovered, 13);
  stats::bump(st.messages_delivered, 18446744073709551615u - 200);

  auto series = samples(render_metrics(st, 42));
  CHECK(series.at("hubnode_connections_active") == "5");
  CHECK(series.at("hubnode_connections_opened_total") == "9");
  CHECK(series.at("hubnode_connections_closed_total{reason=\"slow_consumer\"}") == "2");
  CHECK(series.at("hubnode_connections_closed_total{reason=\"shutdown\"}") == "1");
  CHECK(series.at("hubnode_connections_closed_total{reason=\"client\"}") == "0");
  CHECK(series.at("hubnode_handshakes_rejected_total{reason=\"too_many_connections\"}") ==
        "1");
  CHECK(series.at("hubnode_handshakes_rejected_total{reason=\"timeout\"}") == "1");
  CHECK(series.at("hubnode_handshakes_rejected_total{reason=\"validation\"}") == "0");
  CHECK(series.at("hubnode_reconnects_total") == "3");
  CHECK(series.at("hubnode_users_online_local") == "4");
  CHECK(series.at("hubnode_messages_received_total") == "100");
  CHECK(series.at("hubnode_messages_delivered_total") == "18446744073709551615");
  CHECK(series.at("hubnode_messages_remote_total") == "50");
  CHECK(series.at("hubnode_messages_dropped_total{reason=\"redis_down\"}") == "1");
  CHECK(series.at("hubnode_messages_dropped_total{reason=\"rate_limited\"}") == "0");
  CHECK(series.at("hubnode_send_queue_bytes_max") == "4096");
  CHECK(series.at("hubnode_sweeps_total") == "6");
  CHECK(series.at("hubnode_stale_closed_total") == "2");
  CHECK(series.at("hubnode_presence_transitions_total{state=\"online\"}") == "11");
  CHECK(series.at("hubnode_presence_transitions_total{state=\"offline\"}") == "10");
  CHECK(series.at("hubnode_redis_up") == "1");
  CHECK(series.at("hubnode_redis_errors_total") == "8");
  CHECK(series.at("hubnode_actors_running") == "42");
  CHECK(series.at("hubnode_recoveries_total{result=\"recovered\"}") == "12");
  CHECK(series.at("hubnode_recoveries_total{result=\"not_recovered\"}") == "13");
}
