#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "redis"

#include "src/redis/client.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>

namespace hubnode {

// -- redis:// URLs -----------------------------------------------------------

namespace {

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         });
}

bool all_of(std::string_view text, bool (*pred)(char)) {
  return !text.empty() && std::all_of(text.begin(), text.end(), pred);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

bool is_ipv6_char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

// Digits only, at most `max`.
std::optional<long> parse_number(std::string_view digits, long max) {
  if (!all_of(digits, is_digit))
    return std::nullopt;
  long value = 0;
  for (char c : digits) {
    value = value * 10 + (c - '0');
    if (value > max)
      return std::nullopt;
  }
  return value;
}

int hex_value(char c) {
  if (is_digit(c))
    return c - '0';
  auto lower = std::tolower(static_cast<unsigned char>(c));
  return lower >= 'a' && lower <= 'f' ? lower - 'a' + 10 : -1;
}

std::optional<std::string> percent_decode(std::string_view text) {
  std::string result;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      result += text[i];
      continue;
    }
    if (i + 2 >= text.size())
      return std::nullopt;
    auto high = hex_value(text[i + 1]);
    auto low = hex_value(text[i + 2]);
    if (high < 0 || low < 0)
      return std::nullopt;
    result += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return result;
}

// "host:port", "[v6]:port"; fills host and port.
bool parse_host_port(std::string_view text, redis_endpoint& endpoint) {
  std::string_view host;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      return false;
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (!all_of(host, is_ipv6_char) || host.find(':') == std::string_view::npos)
      return false;
  } else {
    auto colon = text.find(':');
    if (colon == std::string_view::npos)
      return false;
    host = text.substr(0, colon);
    rest = text.substr(colon);
    if (!all_of(host, is_host_char))
      return false;
  }
  if (rest.empty() || rest.front() != ':')
    return false;
  auto port = parse_number(rest.substr(1), 65535);
  if (!port || *port == 0)
    return false;
  endpoint.host = std::string{host};
  endpoint.port = static_cast<std::uint16_t>(*port);
  return true;
}

} // namespace

std::optional<redis_endpoint> parse_redis_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (!starts_with_nocase(url, scheme))
    return std::nullopt;
  auto rest = url.substr(scheme.size());
  redis_endpoint endpoint;
  // The password may hold '/' or ':' (or an unencoded '@'), so the user info
  // ends at the last '@'.
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    auto userinfo = rest.substr(0, at);
    if (userinfo.empty() || userinfo.front() != ':')
      return std::nullopt; // a user name: not in redis://[:password@]
    auto password = percent_decode(userinfo.substr(1));
    if (!password)
      return std::nullopt;
    endpoint.password = std::move(*password);
    rest = rest.substr(at + 1);
  }
  auto slash = rest.find('/');
  if (!parse_host_port(rest.substr(0, slash), endpoint))
    return std::nullopt;
  if (slash != std::string_view::npos && slash + 1 < rest.size()) {
    auto db = parse_number(rest.substr(slash + 1), INT_MAX);
    if (!db)
      return std::nullopt;
    endpoint.db = static_cast<int>(*db);
  }
  return endpoint;
}

// -- shared hiredis plumbing ------------------------------------------------

void detail::redis_context_deleter::operator()(redisContext* ctx) const {
  redisFree(ctx);
}

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

using clock = std::chrono::steady_clock;
using std::chrono::nanoseconds;

// hiredis takes timevals; 0 would mean "no timeout" to setsockopt.
timeval to_timeval(nanoseconds timeout) {
  auto us = std::max<std::int64_t>(
      1000, std::chrono::duration_cast<std::chrono::microseconds>(timeout).count());
  return timeval{static_cast<time_t>(us / 1000000),
                 static_cast<suseconds_t>(us % 1000000)};
}

std::string context_error(const redisContext* ctx) {
  return ctx->errstr[0] != '\0' ? std::string{ctx->errstr} : std::string{"I/O error"};
}

redis_reply convert(const redisReply* reply) {
  redis_reply result;
  switch (reply->type) {
  case REDIS_REPLY_STRING:
    result.type = redis_reply::kind::string;
    result.str.assign(reply->str, reply->len);
    break;
  case REDIS_REPLY_STATUS:
    result.type = redis_reply::kind::status;
    result.str.assign(reply->str, reply->len);
    break;
  case REDIS_REPLY_ERROR:
    result.type = redis_reply::kind::error;
    result.str.assign(reply->str, reply->len);
    break;
  case REDIS_REPLY_INTEGER:
    result.type = redis_reply::kind::integer;
    result.integer = reply->integer;
    break;
  case REDIS_REPLY_ARRAY:
    result.type = redis_reply::kind::array;
    result.elements.reserve(reply->elements);
    for (std::size_t i = 0; i < reply->elements; ++i)
      result.elements.push_back(convert(reply->element[i]));
    break;
  default:
    result.type = redis_reply::kind::nil;
    break;
  }
  return result;
}

struct reply_deleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};

using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// Queues one command in hiredis' output buffer, binary-safe.
bool append(redisContext* ctx, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (auto& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  return redisAppendCommandArgv(ctx, static_cast<int>(args.size()), argv.data(),
                                lengths.data()) == REDIS_OK;
}

// Writes the whole output buffer. The socket is blocking with SO_SNDTIMEO set
// to the command timeout, so a stuck server fails the write in bounded time.
bool flush(redisContext* ctx) {
  int done = 0;
  do {
    if (redisBufferWrite(ctx, &done) != REDIS_OK)
      return false;
  } while (done == 0);
  return true;
}

// Waits for the socket to have data until `deadline` (a deadline in the past
// still looks once): 1 readable, 0 timeout, -1 error (errno).
int wait_readable(int fd, clock::time_point deadline) {
  for (;;) {
    auto left = std::max(nanoseconds::zero(), deadline - clock::now());
    // Rounded up, so that a sub-millisecond rest is not a busy loop.
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  left + std::chrono::microseconds(999))
                  .count();
    pollfd pfd{fd, POLLIN, 0};
    auto n = ::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(ms, INT_MAX)));
    if (n < 0 && errno == EINTR)
      continue;
    if (n != 0)
      return n < 0 ? -1 : 1;
    if (clock::now() >= deadline)
      return 0;
  }
}

// The next reply, reading from the socket until `deadline`; nothing (and the
// reason in `why`) on a broken connection or a timeout.
reply_ptr read_reply(redisContext* ctx, clock::time_point deadline, std::string& why) {
  for (;;) {
    void* reply = nullptr;
    if (redisGetReplyFromReader(ctx, &reply) != REDIS_OK) {
      why = context_error(ctx);
      return nullptr;
    }
    if (reply != nullptr)
      return reply_ptr{static_cast<redisReply*>(reply)};
    auto ready = wait_readable(ctx->fd, deadline);
    if (ready <= 0) {
      why = ready == 0 ? "command timeout" : std::strerror(errno);
      return nullptr;
    }
    if (redisBufferRead(ctx) != REDIS_OK) {
      why = context_error(ctx);
      return nullptr;
    }
  }
}

// Sends every command and reads every reply, all within `timeout`. A failure
// leaves the connection out of step: the caller must close it.
redis_result exchange(redisContext* ctx, const redis_pipeline& pipeline,
                      nanoseconds timeout) {
  for (auto& command : pipeline)
    if (!append(ctx, command))
      return redis_result::failure(context_error(ctx));
  if (!flush(ctx))
    return redis_result::failure(context_error(ctx));
  auto deadline = clock::now() + timeout;
  redis_result result;
  result.replies.reserve(pipeline.size());
  for (std::size_t i = 0; i < pipeline.size(); ++i) {
    std::string why;
    auto reply = read_reply(ctx, deadline, why);
    if (!reply)
      return redis_result::failure(std::move(why));
    result.replies.push_back(convert(reply.get()));
  }
  return result;
}

// A connected, authenticated context on the right database, or nothing and
// the reason. The password never goes into the reason.
detail::redis_context_ptr open(const redis_endpoint& endpoint,
                               nanoseconds connect_timeout, nanoseconds command_timeout,
                               std::string& why) {
  auto where = endpoint.host + ":" + std::to_string(endpoint.port);
  detail::redis_context_ptr ctx{redisConnectWithTimeout(
      endpoint.host.c_str(), endpoint.port, to_timeval(connect_timeout))};
  if (!ctx) {
    why = "connect to " + where + ": out of memory";
    return nullptr;
  }
  if (ctx->err != 0) {
    why = "connect to " + where + ": " + context_error(ctx.get());
    return nullptr;
  }
  if (redisSetTimeout(ctx.get(), to_timeval(command_timeout)) != REDIS_OK) {
    why = "connect to " + where + ": " + context_error(ctx.get());
    return nullptr;
  }
  redis_pipeline handshake;
  if (!endpoint.password.empty())
    handshake.push_back({"AUTH", endpoint.password});
  if (endpoint.db != 0)
    handshake.push_back({"SELECT", std::to_string(endpoint.db)});
  // Proves that the server answers commands (not LOADING, not protected).
  handshake.push_back({"PING"});
  auto result = exchange(ctx.get(), handshake, command_timeout);
  if (!result) {
    why = where + ": " + result.error;
    return nullptr;
  }
  for (std::size_t i = 0; i < handshake.size(); ++i) {
    if (result.replies[i].is_error()) {
      // handshake[i][0] only: the AUTH argument is the password.
      why = where + ": " + handshake[i][0] + " failed: " + result.replies[i].str;
      return nullptr;
    }
  }
  return ctx;
}

bool is_script(const redis_command& command) {
  return command.size() >= 2 && command[0].size() == 10 &&
         starts_with_nocase(command[0], "EVALSCRIPT");
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

// -- redis_connection -------------------------------------------------------

std::string redis_connection::connect(const redis_endpoint& endpoint,
                                      nanoseconds connect_timeout,
                                      nanoseconds command_timeout) {
  disconnect();
  command_timeout_ = command_timeout;
  std::string why;
  ctx_ = open(endpoint, connect_timeout, command_timeout, why);
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
  auto result = exchange(ctx_.get(), wire, command_timeout_);
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

// -- redis_subscription -----------------------------------------------------

std::string redis_subscription::connect(const redis_endpoint& endpoint,
                                        nanoseconds connect_timeout,
                                        nanoseconds command_timeout) {
  disconnect();
  ctx_ = open(endpoint, connect_timeout, command_timeout, error_);
  return error_;
}

void redis_subscription::disconnect() {
  ctx_.reset();
  requested_ = 0;
  confirmed_ = 0;
  error_.clear();
}

void redis_subscription::fail(std::string why) {
  ctx_.reset();
  requested_ = 0;
  confirmed_ = 0;
  error_ = std::move(why);
}

int redis_subscription::fd() const {
  return ctx_ ? ctx_->fd : -1;
}

bool redis_subscription::send(const char* verb,
                              const std::vector<std::string>& channels) {
  if (!ctx_)
    return false;
  if (channels.empty())
    return true; // an empty UNSUBSCRIBE would drop every channel
  std::vector<std::string> command;
  command.reserve(channels.size() + 1);
  command.emplace_back(verb);
  command.insert(command.end(), channels.begin(), channels.end());
  if (!append(ctx_.get(), command) || !flush(ctx_.get())) {
    fail(context_error(ctx_.get()));
    return false;
  }
  // Redis confirms each channel separately, subscribed or not.
  requested_ += channels.size();
  return true;
}

bool redis_subscription::subscribe(const std::vector<std::string>& channels) {
  return send("SUBSCRIBE", channels);
}

bool redis_subscription::unsubscribe(const std::vector<std::string>& channels) {
  return send("UNSUBSCRIBE", channels);
}

std::vector<redis_subscription::message> redis_subscription::poll(nanoseconds timeout) {
  std::vector<message> result;
  if (!ctx_)
    return result;
  // Later reads only take what is there already: a burst is drained in a few
  // reads without holding the caller for long.
  constexpr int max_reads = 16;
  auto deadline = clock::now() + timeout;
  for (int reads = 0; ctx_ && reads <= max_reads; ++reads) {
    for (;;) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(ctx_.get(), &raw) != REDIS_OK) {
        fail(context_error(ctx_.get()));
        return result;
      }
      if (raw == nullptr)
        break;
      reply_ptr reply{static_cast<redisReply*>(raw)};
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
          reply->element[0]->type != REDIS_REPLY_STRING)
        continue;
      std::string_view kind{reply->element[0]->str, reply->element[0]->len};
      auto text = [&](std::size_t i) {
        auto* element = reply->element[i];
        return element->type == REDIS_REPLY_STRING
                   ? std::string{element->str, element->len}
                   : std::string{};
      };
      if (kind == "message")
        result.emplace_back(text(1), text(2));
      else if (kind == "pmessage" && reply->elements >= 4)
        result.emplace_back(text(2), text(3));
      else if (kind.find("subscribe") != std::string_view::npos)
        ++confirmed_;
    }
    if (reads == max_reads)
      break;
    // Only a call that has nothing yet waits.
    auto ready =
        wait_readable(ctx_->fd, reads == 0 && result.empty() ? deadline : clock::now());
    if (ready == 0)
      break;
    if (ready < 0) {
      fail(std::strerror(errno));
      break;
    }
    if (redisBufferRead(ctx_.get()) != REDIS_OK)
      fail(context_error(ctx_.get()));
  }
  return result;
}

} // namespace hubnode
