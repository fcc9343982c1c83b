#include "src/base/log.hpp"

// The stream scripts of SPEC section 8 against a real redis-server, run
// through redis_connection as the redis actor runs them (EVALSCRIPT as
// EVALSHA).

#include "src/redis/keys.hpp"
#include "src/redis/stream_scripts.hpp"
#include "src/redis/subscriber.hpp"
#include "tests/unit/redis_test_helpers.hpp"

using namespace hubnode;
using namespace hubnode::test;
using namespace std::chrono_literals;

namespace {

using offsets = std::vector<std::uint64_t>;

constexpr auto ttl = std::chrono::milliseconds(60000);

std::string frame_at(std::uint64_t offset) {
  return R"({"type":"publication","channel":"c","offset":)" + std::to_string(offset) +
         R"(,"data":1})";
}

struct scripts_fixture {
  redis_server server;
  redis_connection conn = connected(server.endpoint());
  redis_keys keys{"sp:"};
  std::string stream = keys.channel_stream("c");
  std::string pubsub = keys.publications("c");

  stream_scripts::appended append(std::size_t size = 3,
                                  const std::string& new_epoch = "N-1") {
    auto reply = run_one(
        conn, stream_scripts::append(stream, frame_at(0), new_epoch, size, ttl, pubsub));
    auto result = stream_scripts::parse_appended(reply);
    REQUIRE_MESSAGE(result, reply.str);
    return *result;
  }

  stream_read read(std::optional<std::uint64_t> after, std::size_t count,
                   const std::string& new_epoch = "R-1",
                   std::chrono::milliseconds read_ttl = ttl) {
    auto reply =
        run_one(conn, stream_scripts::read(stream, new_epoch, read_ttl, after, count));
    auto result = stream_scripts::parse_read(reply);
    REQUIRE_MESSAGE(result, reply.str);
    return *result;
  }

  std::int64_t pttl(const std::string& key) {
    return run_one(conn, {"PTTL", key}).integer;
  }
};

offsets offsets_of(const stream_read& read) {
  offsets result;
  for (auto& e : read.entries) {
    CHECK(*e.frame == frame_at(e.offset)); // the offset inside matches the id
    result.push_back(e.offset);
  }
  return result;
}

} // namespace

TEST_CASE_FIXTURE(scripts_fixture,
                  "stream scripts: append gives consecutive offsets and keeps `size` "
                  "entries") {
  for (std::uint64_t i = 1; i <= 5; ++i) {
    // Only the first append's epoch is taken: the stream has one after it.
    auto done = append(3, "N-" + std::to_string(i));
    CHECK(done.offset == i);
    CHECK(done.epoch == "N-1");
    CHECK(done.receivers == 0);
  }
  auto kept = run_one(conn, {"LRANGE", redis_keys::log_of(stream), "0", "-1"});
  REQUIRE(kept.elements.size() == 3);
  CHECK(kept.elements[0].str == frame_at(3));
  CHECK(kept.elements[2].str == frame_at(5));
  CHECK(run_one(conn, {"HGET", redis_keys::meta_of(stream), "top"}).str == "5");
}

TEST_CASE_FIXTURE(scripts_fixture,
                  "stream scripts: size 0 keeps no entry but counts the offsets") {
  CHECK(append(0).offset == 1);
  CHECK(append(0).offset == 2);
  CHECK(run_one(conn, {"EXISTS", redis_keys::log_of(stream)}).integer == 0);
  auto top = read(0, 10);
  CHECK(top.top.offset == 2);
  CHECK(top.entries.empty());
}

TEST_CASE_FIXTURE(scripts_fixture,
                  "stream scripts: an append publishes <epoch>\\n<offset>\\n<frame>") {
  redis_subscription sub;
  REQUIRE(sub.connect(server.endpoint(), 1s, 1s).empty());
  REQUIRE(sub.subscribe({pubsub}));
  REQUIRE(eventually([&] {
    sub.poll(10ms);
    return sub.confirmed() == 1;
  }));
  append();
  CHECK(append().receivers == 1);
  std::vector<redis_subscription::message> seen;
  REQUIRE(eventually([&] {
    for (auto& m : sub.poll(10ms))
      seen.push_back(std::move(m));
    return seen.size() == 2;
  }));
  CHECK(seen[1].first == pubsub);
  CHECK(seen[1].second == "N-1\n2\n" + frame_at(2));
  auto entry = stream_scripts::parse_published(seen[1].second);
  REQUIRE(entry);
  CHECK(entry->epoch == "N-1");
  CHECK(entry->entry.offset == 2);
  CHECK(*entry->entry.frame == frame_at(2));
}

TEST_CASE_FIXTURE(scripts_fixture, "stream scripts: read after an offset") {
  for (int i = 0; i < 5; ++i)
    append();
  auto after3 = read(3, 10);
  CHECK(after3.top.epoch == "N-1");
  CHECK(after3.top.offset == 5);
  CHECK(offsets_of(after3) == offsets{4, 5});
  // 2 was trimmed: the read starts at the oldest kept, which shows the gap.
  CHECK(offsets_of(read(1, 10)) == offsets{3, 4, 5});
  CHECK(offsets_of(read(3, 1)) == offsets{4});
  CHECK(read(5, 10).entries.empty());
  CHECK(read(99, 10).entries.empty());
  CHECK(read(3, 0).entries.empty());
}

TEST_CASE_FIXTURE(scripts_fixture, "stream scripts: read of the latest entries") {
  for (int i = 0; i < 5; ++i)
    append();
  CHECK(offsets_of(read(std::nullopt, 2)) == offsets{4, 5});
  CHECK(offsets_of(read(std::nullopt, 10)) == offsets{3, 4, 5});
  auto top = read(std::nullopt, 0);
  CHECK(top.top.offset == 5);
  CHECK(top.entries.empty());
}

TEST_CASE_FIXTURE(scripts_fixture,
                  "stream scripts: a read of a missing stream gives it an epoch") {
  auto first = read(std::nullopt, 10, "R-1");
  CHECK(first.top.epoch == "R-1");
  CHECK(first.top.offset == 0);
  CHECK(first.entries.empty());
  CHECK(read(std::nullopt, 10, "R-2").top.epoch == "R-1");
  auto done = append(3, "N-1");
  CHECK(done.epoch == "R-1");
  CHECK(done.offset == 1);
}

TEST_CASE_FIXTURE(scripts_fixture,
                  "stream scripts: a stream lost (DEL) starts again in a new epoch") {
  append(3, "A-1");
  append(3, "A-2");
  run_one(conn, {"DEL", redis_keys::log_of(stream), redis_keys::meta_of(stream)});
  auto done = append(3, "B-1");
  CHECK(done.epoch == "B-1");
  CHECK(done.offset == 1);
  auto again = read(0, 10);
  CHECK(again.top.epoch == "B-1");
  CHECK(offsets_of(again) == offsets{1});
}

TEST_CASE_FIXTURE(scripts_fixture, "stream scripts: both keys get the ttl") {
  read(std::nullopt, 0);
  auto meta = pttl(redis_keys::meta_of(stream));
  CHECK(meta > 0);
  CHECK(meta <= ttl.count());
  CHECK(pttl(redis_keys::log_of(stream)) == -2); // no entry yet, no key
  append();
  for (auto& key : {redis_keys::log_of(stream), redis_keys::meta_of(stream)}) {
    CAPTURE(key);
    CHECK(pttl(key) > 0);
    CHECK(pttl(key) <= ttl.count());
  }
  // A read starts the ttl again, as a reader is using the stream.
  read(std::nullopt, 0, "R-1", 2 * ttl);
  for (auto& key : {redis_keys::log_of(stream), redis_keys::meta_of(stream)}) {
    CAPTURE(key);
    CHECK(pttl(key) > ttl.count());
  }
}

TEST_CASE("stream scripts: replies that are not the scripts' are refused") {
  redis_reply wrong;
  CHECK_FALSE(stream_scripts::parse_appended(wrong));
  CHECK_FALSE(stream_scripts::parse_read(wrong));
  wrong.type = redis_reply::kind::error;
  wrong.str = "ERR";
  CHECK_FALSE(stream_scripts::parse_appended(wrong));
  CHECK_FALSE(stream_scripts::parse_read(wrong));
}
