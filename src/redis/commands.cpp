#include "src/base/log.hpp"

#include "src/redis/commands.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <boost/beast/core/string.hpp>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>

namespace hubnode {

using std::chrono::nanoseconds;

// The digest leaves OpenSSL's per-thread error state (904 bytes) behind on
// the calling thread, the redis actor's own. That thread can still be ending
// when the process exits: OpenSSL's exit cleanup has then dropped the key
// that would free the state at thread exit, and LeakSanitizer reports it. A
// script is hashed once per connection, so the state is freed right away.
std::string redis_script_sha(std::string_view lua) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(lua.data(), lua.size(), digest, &length, EVP_sha1(), nullptr);
  OPENSSL_thread_stop();
  static constexpr char hex[] = "0123456789abcdef";
  std::string result;
  for (unsigned int i = 0; i < length; ++i) {
    result += hex[digest[i] >> 4];
    result += hex[digest[i] & 0xf];
  }
  return result;
}

namespace {

bool is_script(const redis_command& command) {
  return command.size() >= 2 && boost::beast::iequals(command[0], "EVALSCRIPT");
}

bool is_noscript(const redis_reply& reply) {
  return reply.is_error() && reply.str.compare(0, 8, "NOSCRIPT") == 0;
}

redis_command as_evalsha(const redis_command& command, const std::string& sha) {
  redis_command result;
  result.reserve(command.size());
  result.push_back("EVALSHA");
  result.push_back(sha);
  result.insert(result.end(), command.begin() + 2, command.end());
  return result;
}

} // namespace

std::string redis_connection::connect(const redis_endpoint& endpoint,
                                      nanoseconds connect_timeout,
                                      nanoseconds command_timeout) {
  disconnect();
  command_timeout_ = command_timeout;
  std::string why;
  ctx_ = redis_io::open(endpoint, connect_timeout, command_timeout, why);
  return why;
}

void redis_connection::disconnect() {
  ctx_.reset();
  loaded_.clear();
}

std::string redis_connection::probe() {
  if (!ctx_)
    return "not connected";
  pollfd pfd{ctx_->fd, POLLIN, 0};
  auto n = ::poll(&pfd, 1, 0);
  if (n == 0 || (n < 0 && errno == EINTR))
    return {};
  // Nothing is due on an idle connection: readable means closed, or bytes
  // that would put every later reply out of step.
  char byte;
  auto peeked = ::recv(ctx_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  std::string why = peeked == 0  ? "Server closed the connection"
                    : peeked < 0 ? std::string{std::strerror(errno)}
                                 : "unexpected data from the server";
  disconnect();
  return why;
}

redis_result redis_connection::fail(std::string why) {
  disconnect();
  return redis_result::failure(std::move(why));
}

const std::string& redis_connection::sha_of(const std::string& lua) {
  auto i = shas_.find(lua);
  if (i == shas_.end())
    i = shas_.emplace(lua, redis_script_sha(lua)).first;
  return i->second;
}

// Runs the commands of `pipeline` at `indexes` into their places in
// `replies`. Each script they need that the connection has not loaded goes in
// front as SCRIPT LOAD, so that EVALSHA finds it; the scripts that still
// answer NOSCRIPT go to `missing`, their reply stays the NOSCRIPT error. A
// script that does not compile answers with the error of its SCRIPT LOAD.
redis_result redis_connection::attempt(const redis_pipeline& pipeline,
                                       const std::vector<std::size_t>& indexes,
                                       redis_replies& replies,
                                       std::vector<std::size_t>& missing) {
  redis_pipeline wire;
  std::vector<std::string> loads;
  for (auto i : indexes) {
    if (!is_script(pipeline[i]))
      continue;
    auto& sha = sha_of(pipeline[i][1]);
    if (is_loaded(sha) || std::find(loads.begin(), loads.end(), sha) != loads.end())
      continue;
    loads.push_back(sha);
    wire.push_back({"SCRIPT", "LOAD", pipeline[i][1]});
  }
  for (auto i : indexes) {
    auto& command = pipeline[i];
    wire.push_back(is_script(command) ? as_evalsha(command, sha_of(command[1]))
                                      : command);
  }
  auto result = redis_io::exchange(ctx_.get(), wire, command_timeout_);
  if (!result)
    return fail(std::move(result.error));
  std::vector<std::pair<std::string, redis_reply>> failed_loads;
  for (std::size_t k = 0; k < loads.size(); ++k) {
    if (result.replies[k].is_error())
      failed_loads.emplace_back(loads[k], std::move(result.replies[k]));
    else
      loaded_.push_back(loads[k]);
  }
  for (std::size_t j = 0; j < indexes.size(); ++j) {
    auto i = indexes[j];
    auto& reply = result.replies[loads.size() + j];
    if (is_script(pipeline[i]) && is_noscript(reply)) {
      auto& sha = sha_of(pipeline[i][1]);
      auto failed = std::find_if(failed_loads.begin(), failed_loads.end(),
                                 [&](const auto& entry) { return entry.first == sha; });
      if (failed != failed_loads.end())
        reply = failed->second;
      else
        missing.push_back(i);
    }
    replies[i] = std::move(reply);
  }
  return result;
}

bool redis_connection::is_loaded(const std::string& sha) const {
  return std::find(loaded_.begin(), loaded_.end(), sha) != loaded_.end();
}

// A NOSCRIPT after the load in front can only come from a SCRIPT FLUSH on the
// server meanwhile: those commands are retried once, after a new load, in a
// second round trip. They run after the pipeline's other commands then; a
// cache flushed under a running node is an operator's act, rare enough.
redis_result redis_connection::run(const redis_pipeline& pipeline) {
  if (!ctx_)
    return redis_result::failure("not connected");
  if (std::any_of(pipeline.begin(), pipeline.end(),
                  [](const redis_command& command) { return command.empty(); }))
    return redis_result::failure("empty command");
  std::vector<std::size_t> all(pipeline.size());
  for (std::size_t i = 0; i < all.size(); ++i)
    all[i] = i;
  redis_replies replies(pipeline.size());
  std::vector<std::size_t> missing;
  if (auto first = attempt(pipeline, all, replies, missing); !first)
    return first;
  if (!missing.empty()) {
    // Every script is gone from the server, not only these.
    loaded_.clear();
    std::vector<std::size_t> still_missing;
    if (auto second = attempt(pipeline, missing, replies, still_missing); !second)
      return second;
  }
  return redis_result{std::move(replies), {}};
}

} // namespace hubnode
