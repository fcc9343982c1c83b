#include "src/base/log.hpp"

#include "src/redis/url.hpp"

#include <doctest/doctest.h>

using namespace hubnode;

TEST_CASE("redis: parse_redis_url reads every part of a good URL") {
  auto plain = parse_redis_url("redis://localhost:6379");
  REQUIRE(plain);
  CHECK(plain->host == "localhost");
  CHECK(plain->port == 6379);
  CHECK(plain->password.empty());
  CHECK(plain->db == 0);

  auto full = parse_redis_url("redis://:s3cret@redis.example.com:6380/15");
  REQUIRE(full);
  CHECK(full->host == "redis.example.com");
  CHECK(full->port == 6380);
  CHECK(full->password == "s3cret");
  CHECK(full->db == 15);

  auto v4 = parse_redis_url("redis://10.0.0.7:1/0");
  REQUIRE(v4);
  CHECK(v4->host == "10.0.0.7");
  CHECK(v4->port == 1);

  auto v6 = parse_redis_url("redis://[::1]:65535/2");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 65535);
  CHECK(v6->db == 2);

  auto encoded = parse_redis_url("redis://:p%40ss%3Aw%2Fd@h:7");
  REQUIRE(encoded);
  CHECK(encoded->password == "p@ss:w/d");

  auto raw_at = parse_redis_url("redis://:pa@ss@h:7");
  REQUIRE(raw_at);
  CHECK(raw_at->password == "pa@ss");
  CHECK(raw_at->host == "h");

  auto trailing_slash = parse_redis_url("REDIS://h:7/");
  REQUIRE(trailing_slash);
  CHECK(trailing_slash->db == 0);
}

TEST_CASE("redis: parse_redis_url refuses anything else") {
  for (auto url : {"",
                   "redis://",
                   "localhost:6379",
                   "http://h:1",
                   "rediss://h:1",
                   "redis://h",
                   "redis://h:",
                   "redis://h:0",
                   "redis://h:65536",
                   "redis://h:99999999999999999999",
                   "redis://h:12a",
                   "redis://:1",
                   "redis://user:pw@h:1",
                   "redis://:pw@h",
                   "redis://@h:1",
                   "redis://:%zz@h:1",
                   "redis://:%4@h:1",
                   "redis://[::1:1",
                   "redis://[zz]:1",
                   "redis://[]:1",
                   "redis://::1:1",
                   "redis://h:1/x",
                   "redis://h:1/1/2",
                   "redis://h:1/-1",
                   "redis://h:1?db=1",
                   "redis://h:1/99999999999",
                   "redis://ho st:1",
                   "redis://h:1 "}) {
    CAPTURE(url);
    CHECK_FALSE(parse_redis_url(url));
  }
}
