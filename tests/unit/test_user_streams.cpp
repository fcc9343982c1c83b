#include "src/base/log.hpp"

#include "actors/streams/stream_store.hpp"

#include <doctest/doctest.h>

using namespace hubnode;
using namespace std::chrono_literals;

namespace {

using time_point = user_streams::time_point;

stream_settings settings(std::size_t size = 3, std::size_t recover_limit = 300) {
  return {"i1", size, 10s, recover_limit};
}

struct streams_fixture {
  user_streams streams{settings()};
  time_point t0{};

  // Appends a frame that names its own offset; returns that offset's text.
  std::string append(user_id user, time_point now) {
    return *streams.append(user, now, [](std::uint64_t offset) {
      return make_payload(std::to_string(offset));
    });
  }

  std::optional<std::vector<std::string>> since(user_id user, stream_position from,
                                                time_point now) {
    auto frames = streams.since(user, from, now);
    if (!frames)
      return std::nullopt;
    std::vector<std::string> texts;
    for (auto& frame : *frames)
      texts.push_back(*frame);
    return texts;
  }
};

using strings = std::vector<std::string>;

} // namespace

TEST_CASE_FIXTURE(streams_fixture, "user streams: offsets 1, 2, 3 per user") {
  CHECK(append(7, t0) == "1");
  CHECK(append(7, t0) == "2");
  CHECK(append(8, t0) == "1");
  CHECK(append(7, t0) == "3");
  auto position = streams.open(7, t0);
  CHECK(position.offset == 3);
  CHECK(position.epoch != streams.open(8, t0).epoch);
}

TEST_CASE_FIXTURE(streams_fixture, "user streams: the epoch of a welcome stays") {
  auto welcome = streams.open(7, t0);
  CHECK(welcome.offset == 0);
  append(7, t0 + 20s); // the stream is held by the connection, not expired
  CHECK(since(7, welcome, t0 + 20s) == strings{"1"});
  CHECK(streams.open(7, t0 + 20s).epoch == welcome.epoch);
}

TEST_CASE_FIXTURE(streams_fixture, "user streams: recovery since a position") {
  auto start = streams.open(7, t0);
  for (int i = 0; i < 3; ++i)
    append(7, t0);
  CHECK(since(7, start, t0) == strings{"1", "2", "3"});
  CHECK(since(7, {start.epoch, 2}, t0) == strings{"3"});
  CHECK(since(7, {start.epoch, 3}, t0) == strings{});
  CHECK_FALSE(since(7, {start.epoch, 4}, t0)); // a future offset
  CHECK_FALSE(since(7, {"other", 2}, t0));
  CHECK_FALSE(since(9, {start.epoch, 0}, t0)); // no stream
}

TEST_CASE_FIXTURE(streams_fixture, "user streams: trimmed to size, the oldest first") {
  auto start = streams.open(7, t0);
  for (int i = 0; i < 5; ++i)
    append(7, t0);
  CHECK(since(7, {start.epoch, 2}, t0) == strings{"3", "4", "5"});
  CHECK_FALSE(since(7, {start.epoch, 1}, t0)); // offset 2 is no longer kept
  append(7, t0);
  CHECK(since(7, {start.epoch, 3}, t0) == strings{"4", "5", "6"});
}

TEST_CASE("user streams: size 0 keeps nothing, offsets go on") {
  user_streams streams{settings(0)};
  auto start = streams.open(7, {});
  for (std::uint64_t i = 1; i <= 2; ++i)
    CHECK(*streams.append(7, {}, [](std::uint64_t offset) {
      return make_payload(std::to_string(offset));
    }) == std::to_string(i));
  CHECK_FALSE(streams.since(7, start, {}));
  CHECK(streams.since(7, {start.epoch, 2}, {})->empty());
}

TEST_CASE("user streams: at most recover-limit entries are replayed") {
  user_streams streams{settings(10, 2)};
  auto start = streams.open(7, {});
  for (int i = 0; i < 3; ++i)
    streams.append(7, {}, [](std::uint64_t) { return make_payload("m"); });
  CHECK_FALSE(streams.since(7, start, {}));
  CHECK(streams.since(7, {start.epoch, 1}, {})->size() == 2);
}

TEST_CASE_FIXTURE(streams_fixture, "user streams: ttl after the last entry and close") {
  auto start = streams.open(7, t0);
  append(7, t0);
  streams.close(7, t0 + 5s);
  // Kept for the ttl after the connection left, though the entry is older.
  CHECK(since(7, start, t0 + 15s) == strings{"1"});
  streams.expire(t0 + 15s);
  CHECK(streams.streams() == 1);
  CHECK_FALSE(since(7, start, t0 + 16s));
  streams.expire(t0 + 16s);
  CHECK(streams.streams() == 0);
  // It starts again in a new epoch, at offset 0.
  auto again = streams.open(7, t0 + 16s);
  CHECK(again.epoch != start.epoch);
  CHECK(again.offset == 0);
}

TEST_CASE_FIXTURE(streams_fixture, "user streams: an expired stream is new on access") {
  append(8, t0);
  auto old = streams.open(8, t0);
  streams.close(8, t0);
  CHECK(append(8, t0 + 11s) == "1"); // not swept yet, and still a new epoch
  auto now = streams.open(8, t0 + 11s);
  CHECK(now.epoch != old.epoch);
  CHECK(now.offset == 1);
}

TEST_CASE("user streams: a restart gives new epochs") {
  user_streams before{{"run1", 3, 10s, 300}};
  user_streams after{{"run2", 3, 10s, 300}};
  CHECK(before.open(7, {}).epoch != after.open(7, {}).epoch);
}
