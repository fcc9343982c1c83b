// Redis commands and replies as they travel between actors: plain values, so
// that actors/ never sees a hiredis pointer.
#pragma once

#include "src/base/types.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace hubnode {

// One command as its arguments, e.g. {"PUBLISH", "hubnode:user:42", "..."}.
using redis_command = std::vector<std::string>;
// Commands sent together and answered together, in order.
using redis_pipeline = std::vector<redis_command>;

struct redis_reply {
  enum class kind : std::uint8_t { nil, integer, string, status, error, array };
  kind type = kind::nil;
  std::int64_t integer = 0;
  std::string str; // string, status and error replies
  std::vector<redis_reply> elements;

  bool is_error() const { return type == kind::error; }
};

using redis_replies = std::vector<redis_reply>;

// Where redis.url points. Parsed once at start.
struct redis_endpoint {
  std::string host;
  std::uint16_t port = 6379;
  std::string password;
  int db = 0;
};

} // namespace hubnode

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::redis_pipeline)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hubnode::redis_replies)
