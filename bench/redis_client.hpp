// The few blocking hiredis calls the benchmark makes to Redis (--redis):
// connect, one command, and Redis's own CPU time.
#pragma once

#include "bench/options.hpp"

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

namespace bench {

struct redis_context_deleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using redis_context = std::unique_ptr<redisContext, redis_context_deleter>;

struct redis_reply_deleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using redis_reply = std::unique_ptr<redisReply, redis_reply_deleter>;

// Connects to --redis with a 5 s timeout on every call; throws
// std::runtime_error when it cannot.
redis_context redis_connect(const options& opts);

// Runs one command; throws std::runtime_error on an error reply or a lost
// connection.
redis_reply redis_command(redisContext* c, const std::vector<std::string>& args);

// The sum of these numeric fields of INFO `section`.
double redis_info_sum(redisContext* c, const std::string& section,
                      const std::vector<std::string>& fields);

// used_cpu_user + used_cpu_sys of INFO cpu: Redis's CPU seconds so far.
inline double redis_cpu_seconds(redisContext* c) {
  return redis_info_sum(c, "cpu", {"used_cpu_user", "used_cpu_sys"});
}

// used_memory of INFO memory: bytes Redis has allocated for its data.
inline double redis_used_memory(redisContext* c) {
  return redis_info_sum(c, "memory", {"used_memory"});
}

} // namespace bench
