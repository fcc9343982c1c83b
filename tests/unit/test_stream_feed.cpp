#include "src/base/log.hpp"

// The stream_feed class alone: a stream's readers on one node fed by the
// pub/sub feed and the reads from Redis, with plain lambdas for delivery.

#include "actors/streams/stream_feed.hpp"
#include "tests/unit/actor_fixture.hpp"
#include "tests/unit/stream_helpers.hpp"

#include <unordered_map>

using namespace hubnode;
using namespace hubnode::test;

namespace {

using offsets = std::vector<std::uint64_t>;

payload frame_at(std::uint64_t offset) {
  return make_payload(std::to_string(offset));
}

stream_entry entry(std::uint64_t offset) {
  return {offset, frame_at(offset)};
}

stream_read read_at(std::string epoch, std::uint64_t top, const offsets& kept = {}) {
  return read_of(std::move(epoch), top, kept, frame_at);
}

// The readers are probes only for their handles: the feed itself sends
// nothing, it calls the lambdas.
struct feed_fixture : actor_fixture {
  connection_actor a = spawn_probe(std::make_shared<probe_log>());
  connection_actor b = spawn_probe(std::make_shared<probe_log>());
  std::unordered_map<caf::actor_addr, offsets> got;
  std::vector<caf::actor_addr> lost_ones;

  auto deliver() {
    return [this](const connection_actor& conn, const payload& frame) {
      got[conn.address()].push_back(std::stoull(*frame));
    };
  }

  auto lost() {
    return [this](const connection_actor& conn) { lost_ones.push_back(conn.address()); };
  }

  offsets of(const connection_actor& conn) { return got[conn.address()]; }

  std::optional<stream_feed::resync> push(stream_feed& feed, std::uint64_t offset,
                                          const std::string& epoch = "E") {
    return feed.push(epoch, entry(offset), deliver(), lost());
  }

  void settle(stream_feed& feed, stream_feed::ticket held, const stream_read& read,
              std::optional<std::uint64_t> start) {
    feed.settle(held, read, start, deliver(), lost());
  }

  // A reader that joined and settled at the stream's top.
  void live_at(stream_feed& feed, const connection_actor& conn, std::uint64_t top,
               const std::string& epoch = "E") {
    settle(feed, feed.join(conn), read_at(epoch, top), top);
  }
};

} // namespace

TEST_CASE("stream_feed: recovers only a complete replay of the same epoch") {
  auto read = read_at("E", 5, {3, 4, 5});
  CHECK(recovers(read, {"E", 2}, 10));
  CHECK(recovers(read_at("E", 5), {"E", 5}, 10));
  CHECK_FALSE(recovers(read, {"E", 2}, 2)); // more missed than the limit
  CHECK_FALSE(recovers(read, {"F", 2}, 10));
  CHECK_FALSE(recovers(read, {"E", 6}, 10));                    // ahead of the stream
  CHECK_FALSE(recovers(read_at("E", 5, {4, 5}), {"E", 2}, 10)); // 3 trimmed
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: a joined reader gets nothing until settle, then the "
                  "replay after start and what came meanwhile above the read, once") {
  stream_feed feed{true};
  auto held = feed.join(a);
  CHECK(feed.epoch().empty());
  // Published before and after the read: 4 and 5 are in its replay too.
  for (std::uint64_t offset : {4, 5, 6})
    CHECK_FALSE(push(feed, offset));
  CHECK(of(a).empty());
  settle(feed, held, read_at("E", 5, {3, 4, 5}), 2);
  CHECK(of(a) == offsets{3, 4, 5, 6});
  CHECK(feed.epoch() == "E");
  push(feed, 7);
  CHECK(of(a) == offsets{3, 4, 5, 6, 7});
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: a reader starting at the top gets only what follows") {
  stream_feed feed{true};
  auto held = feed.join(a);
  push(feed, 5);
  push(feed, 6);
  settle(feed, held, read_at("E", 5), 5);
  CHECK(of(a) == offsets{6});
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: a live reader gets the next offset and skips repeats") {
  stream_feed feed{true};
  live_at(feed, a, 0);
  for (std::uint64_t offset : {1, 1, 2, 1, 2, 3})
    CHECK_FALSE(push(feed, offset));
  CHECK(of(a) == offsets{1, 2, 3});
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: a gap holds every live reader; the resync's read "
                  "delivers what each missed") {
  stream_feed feed{true};
  live_at(feed, a, 2);
  live_at(feed, b, 4);
  auto r = push(feed, 6);
  REQUIRE(r);
  CHECK(r->after == 2); // the lowest last offset
  CHECK(of(a).empty());
  CHECK(of(b).empty());
  // Held: further entries wait, and start no second resync.
  CHECK_FALSE(push(feed, 7));
  CHECK_FALSE(feed.hold_live());
  settle(feed, r->held, read_at("E", 6, {3, 4, 5, 6}), std::nullopt);
  CHECK(of(a) == offsets{3, 4, 5, 6, 7});
  CHECK(of(b) == offsets{5, 6, 7});
  auto next = push(feed, 9);
  REQUIRE(next);
  CHECK(next->after == 7);
}

TEST_CASE_FIXTURE(feed_fixture, "stream_feed: hold_live resyncs from the live readers") {
  stream_feed feed{false};
  CHECK_FALSE(feed.hold_live()); // no reader
  feed.join(a);
  CHECK_FALSE(feed.hold_live()); // no live one
  live_at(feed, b, 3);
  auto r = feed.hold_live();
  REQUIRE(r);
  CHECK(r->after == 3);
  push(feed, 5);
  settle(feed, r->held, read_at("E", 4, {4}), std::nullopt);
  CHECK(of(b) == offsets{4, 5});
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: entries trimmed before a resync: a dropping feed "
                  "loses the reader") {
  stream_feed feed{true};
  live_at(feed, a, 2);
  auto r = push(feed, 5);
  REQUIRE(r);
  settle(feed, r->held, read_at("E", 5, {4, 5}), std::nullopt); // 3 trimmed
  CHECK(lost_ones == std::vector<caf::actor_addr>{a.address()});
  CHECK(feed.empty());
  push(feed, 6);
  CHECK(of(a).empty());
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: entries trimmed before a resync: a skipping feed "
                  "goes on after the read's top") {
  stream_feed feed{false};
  live_at(feed, a, 2);
  auto r = push(feed, 5);
  REQUIRE(r);
  push(feed, 6); // published after the read
  settle(feed, r->held, read_at("E", 5, {4, 5}), std::nullopt); // 3 trimmed
  CHECK(lost_ones.empty());
  CHECK(feed.size() == 1);
  CHECK(of(a) == offsets{6});
  CHECK_FALSE(push(feed, 7));
  CHECK(of(a) == offsets{6, 7});
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: a new epoch from the feed loses or resets the live "
                  "readers, not the held ones") {
  SUBCASE("dropping") {
    stream_feed feed{true};
    live_at(feed, a, 3);
    auto held = feed.join(b);
    CHECK_FALSE(push(feed, 1, "F"));
    CHECK(lost_ones == std::vector<caf::actor_addr>{a.address()});
    CHECK(feed.size() == 1);
    CHECK(feed.epoch() == "F");
    settle(feed, held, read_at("F", 0), 0); // read before 1 was appended
    CHECK(of(b) == offsets{1});
  }
  SUBCASE("skipping") {
    stream_feed feed{false};
    live_at(feed, a, 3);
    CHECK_FALSE(push(feed, 1, "F"));
    CHECK(lost_ones.empty());
    CHECK(of(a) == offsets{1});
  }
}

TEST_CASE_FIXTURE(feed_fixture, "stream_feed: abandon loses only the readers held") {
  stream_feed feed{true};
  auto held_a = feed.join(a);
  feed.join(b);
  feed.abandon(held_a, lost());
  CHECK(lost_ones == std::vector<caf::actor_addr>{a.address()});
  CHECK(feed.size() == 1);
  CHECK_FALSE(feed.leave(a.address()));
  CHECK(feed.leave(b.address()));
}

TEST_CASE_FIXTURE(feed_fixture, "stream_feed: abandon ends a resync in flight") {
  stream_feed feed{true};
  live_at(feed, a, 2);
  auto r = feed.hold_live();
  REQUIRE(r);
  feed.abandon(r->held, lost());
  CHECK(feed.empty());
  live_at(feed, b, 2);
  CHECK(feed.hold_live()); // a new one starts
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: observe tells the live readers of a new epoch") {
  SUBCASE("dropping") {
    stream_feed feed{true};
    feed.observe({"F", 0}, lost()); // no read yet: nothing to compare
    live_at(feed, a, 3);
    feed.observe({"E", 9}, lost());
    CHECK(lost_ones.empty());
    feed.observe({"F", 0}, lost());
    CHECK(lost_ones == std::vector<caf::actor_addr>{a.address()});
    CHECK(feed.empty());
  }
  SUBCASE("skipping") {
    stream_feed feed{false};
    live_at(feed, a, 3);
    feed.observe({"F", 0}, lost());
    CHECK(lost_ones.empty());
    push(feed, 1, "F");
    CHECK(of(a) == offsets{1});
  }
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: unpositioned readers take the feed from what comes") {
  stream_feed feed{true};
  auto held_a = feed.join(a);
  push(feed, 4);
  push(feed, 5);
  feed.settle_unpositioned(held_a, deliver());
  CHECK(of(a) == offsets{4, 5});
  auto held_b = feed.join(b);
  feed.settle_unpositioned(held_b, deliver());
  CHECK_FALSE(push(feed, 6));
  CHECK(of(a) == offsets{4, 5, 6});
  CHECK(of(b) == offsets{6});
}

TEST_CASE_FIXTURE(feed_fixture,
                  "stream_feed: a reader without a position gets the top from a "
                  "resync's read") {
  stream_feed feed{true};
  feed.settle_unpositioned(feed.join(a), deliver());
  auto r = feed.hold_live();
  REQUIRE(r);
  CHECK(r->after == 0);
  push(feed, 8);
  settle(feed, r->held, read_at("E", 7, {6, 7}), std::nullopt);
  CHECK(of(a) == offsets{8});
}
