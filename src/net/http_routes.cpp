#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "http"

#include "src/net/http_routes.hpp"

#include "src/base/user_id.hpp"
#include "src/net/ask.hpp"
#include "src/wire/channel_name.hpp"
#include "src/wire/http_target.hpp"
#include "src/wire/jwt.hpp"
#include "src/wire/metrics.hpp"
#include "src/wire/protocol.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <fmt/format.h>
#include <limits>
#include <optional>
#include <variant>

namespace hubnode {

namespace json = boost::json;

namespace {

// How long an HTTP handler waits for an actor before answering 503.
constexpr auto actor_timeout = std::chrono::seconds(5);

http_response make_response(http::status status, std::string body,
                            std::string_view content_type) {
  http_response res{status, 11};
  res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  return res;
}

http_response json_response(http::status status, const json::value& body) {
  return make_response(status, json::serialize(body), "application/json");
}

http_response method_not_allowed() {
  return error_response(http::status::method_not_allowed, "method_not_allowed",
                        "method not allowed for this path");
}

http_response not_found() {
  return error_response(http::status::not_found, "not_found", "no such path");
}

http_response unavailable() {
  return error_response(http::status::service_unavailable, "unavailable",
                        "the node did not answer in time");
}

bool redis_up(server_context& ctx) {
  return ctx.st.redis_up.load(std::memory_order_relaxed) > 0;
}

// 200 also while Redis is down: the node itself is alive.
http_response healthz(server_context& ctx) {
  auto cluster = cluster_mode(ctx.opt);
  json::object body{{"status", "ok"},
                    {"node", ctx.opt.node_id},
                    {"presence", cluster ? "redis" : "memory"},
                    {"redis", !cluster        ? "off"
                              : redis_up(ctx) ? "up"
                                              : "down"},
                    {"connections", ctx.st.connections_active.load()}};
  return json_response(http::status::ok, body);
}

http_response readyz(server_context& ctx) {
  if (!ctx.accepting)
    return error_response(http::status::service_unavailable, "not_ready",
                          "the node is shutting down");
  if (cluster_mode(ctx.opt) &&
      !(redis_up(ctx) && ctx.st.pubsub_up.load(std::memory_order_relaxed) > 0))
    return error_response(http::status::service_unavailable, "not_ready",
                          "Redis is down");
  return json_response(http::status::ok, json::object{{"status", "ready"}});
}

http_response metrics(server_context& ctx) {
  return make_response(http::status::ok,
                       render_metrics(ctx.st, ctx.system.registry().running()),
                       "text/plain; version=0.0.4; charset=utf-8");
}

bool authorized(server_context& ctx, const http_request& req) {
  auto header = req[http::field::authorization];
  return header == "Bearer " + ctx.opt.api_key;
}

// The `data` of a POST body; nothing once `reply` has the 400.
std::optional<std::string_view> body_data(const http_request& req, responder& reply) {
  auto data = protocol::api_message_data(req.body());
  if (!data)
    reply(error_response(http::status::bad_request, "bad_request",
                         "body must be a JSON object with a \"data\" field"));
  return data;
}

// A decimal integer >= 0; one too large for 64 bits counts as the largest.
std::optional<std::uint64_t> decimal(std::string_view text) {
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return parse_user_id(text).value_or(std::numeric_limits<std::uint64_t>::max());
}

void post_message(server_context& ctx, user_id to, const http_request& req,
                  responder reply) {
  auto data = body_data(req, reply);
  if (!data)
    return;
  stats::bump(ctx.st.messages_received);
  ask(
      ctx.system, ctx.hub, actor_timeout,
      [reply](const routed_batch& answers) {
        reply(json_response(
            http::status::accepted,
            json::object{{"id", answers.at(0).id}, {"online", answers.at(0).online}}));
      },
      [reply](const caf::error&) { reply(unavailable()); }, route_atom::value,
      std::string{"server"}, outgoing_batch{{to, std::string{*data}}});
}

void get_presence(server_context& ctx, user_id user, responder reply) {
  ask(
      ctx.system, ctx.presence, actor_timeout,
      [reply, user](bool online, std::uint64_t connections) {
        reply(
            json_response(http::status::ok, json::object{{"userId", std::to_string(user)},
                                                         {"online", online},
                                                         {"connections", connections}}));
      },
      [reply](const caf::error&) { reply(unavailable()); }, count_atom::value, user);
}

// The most entries one history answer holds; a larger limit counts as this.
constexpr std::uint64_t max_history = 1000;
constexpr std::uint64_t default_history = 100;

http_response validation(std::string_view message, std::string_view field) {
  return error_response(http::status::bad_request, "validation", message, field);
}

// A decimal integer >= 0; nothing when the parameter is absent, an error
// when it is malformed.
std::variant<std::optional<std::uint64_t>, http_response>
count_param(const http_request& req, std::string_view name) {
  auto text = query_param(req.target(), name);
  if (!text)
    return std::optional<std::uint64_t>{};
  auto count = decimal(*text);
  if (!count)
    return validation(fmt::format("{} must be an integer >= 0", name), name);
  return count;
}

// The channels actor could not answer: in cluster mode, because Redis is
// down (SPEC section 8).
http_response channels_failed(bool cluster) {
  if (!cluster)
    return unavailable();
  return error_response(http::status::service_unavailable, "redis_down",
                        "Redis is down; try again");
}

void post_publication(server_context& ctx, std::string channel, const http_request& req,
                      responder reply) {
  auto data = body_data(req, reply);
  if (!data)
    return;
  ask(
      ctx.system, ctx.channels, actor_timeout,
      [reply](const std::string& id, std::uint64_t offset) {
        reply(json_response(http::status::accepted,
                            json::object{{"id", id}, {"offset", offset}}));
      },
      [reply, cluster = cluster_mode(ctx.opt)](const caf::error&) {
        reply(channels_failed(cluster));
      },
      publish_atom::value, std::move(channel), std::string{*data});
}

void get_history(server_context& ctx, std::string channel, const http_request& req,
                 responder reply) {
  auto since = count_param(req, "since");
  auto limit = count_param(req, "limit");
  for (auto* bad :
       {std::get_if<http_response>(&since), std::get_if<http_response>(&limit)})
    if (bad) {
      reply(std::move(*bad));
      return;
    }
  history_request query{std::move(channel), std::get<0>(since),
                        static_cast<std::size_t>(std::min(
                            std::get<0>(limit).value_or(default_history), max_history))};
  ask(
      ctx.system, ctx.channels, actor_timeout,
      [reply](const std::string& body) {
        reply(make_response(http::status::ok, body, "application/json"));
      },
      [reply, cluster = cluster_mode(ctx.opt)](const caf::error&) {
        reply(channels_failed(cluster));
      },
      query_atom::value, std::move(query));
}

// /api/channels/{name}/publications and /api/channels/{name}/history, after
// the key was checked.
void handle_channels(server_context& ctx, const http_request& req, std::string_view rest,
                     responder reply) {
  auto slash = rest.rfind('/');
  auto action = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
  auto method = action == "publications" ? http::verb::post : http::verb::get;
  auto name = percent_decode(rest.substr(0, slash));
  if (slash == std::string_view::npos ||
      (action != "publications" && action != "history")) {
    reply(not_found());
  } else if (req.method() != method) {
    reply(method_not_allowed());
  } else if (!name || !valid_channel_name(*name)) {
    reply(validation("channel name must be 1 to 128 characters of A-Z a-z 0-9 _ - . :",
                     "name"));
  } else if (method == http::verb::post) {
    post_publication(ctx, std::move(*name), req, std::move(reply));
  } else {
    get_history(ctx, std::move(*name), req, std::move(reply));
  }
}

// /api/users/{id}/messages, /api/users/{id}/presence and /api/channels/...
void handle_api(server_context& ctx, const http_request& req, std::string_view path,
                responder reply) {
  constexpr std::string_view channels = "/api/channels/";
  if (!ctx.opt.api_key.empty() && path.substr(0, channels.size()) == channels) {
    if (!authorized(ctx, req))
      reply(error_response(http::status::unauthorized, "unauthorized",
                           "missing or wrong bearer key"));
    else
      handle_channels(ctx, req, path.substr(channels.size()), std::move(reply));
    return;
  }
  constexpr std::string_view prefix = "/api/users/";
  auto slash = path.find('/', prefix.size());
  if (ctx.opt.api_key.empty() || path.substr(0, prefix.size()) != prefix ||
      slash == std::string_view::npos) {
    reply(not_found());
    return;
  }
  auto action = path.substr(slash + 1);
  auto method = action == "messages" ? http::verb::post : http::verb::get;
  if (action != "messages" && action != "presence") {
    reply(not_found());
  } else if (!authorized(ctx, req)) {
    reply(error_response(http::status::unauthorized, "unauthorized",
                         "missing or wrong bearer key"));
  } else if (req.method() != method) {
    reply(method_not_allowed());
  } else if (auto id = parse_user_id(path.substr(prefix.size(), slash - prefix.size()));
             !id) {
    reply(error_response(http::status::bad_request, "validation",
                         "user id must be a valid number", "id"));
  } else if (method == http::verb::post) {
    post_message(ctx, *id, req, std::move(reply));
  } else {
    get_presence(ctx, *id, std::move(reply));
  }
}

} // namespace

http_response error_response(http::status status, std::string_view code,
                             std::string_view message, std::string_view field) {
  return make_response(status, protocol::http_error(code, message, field),
                       "application/json");
}

http_response admission_response(admission why) {
  if (why == admission::too_many_connections)
    return error_response(http::status::too_many_requests, "too_many_connections",
                          "too many connections for this user on this node");
  return error_response(http::status::service_unavailable, "over_capacity",
                        "this node is at its connection limit");
}

void handle_http(server_context& ctx, const http_request& req, responder reply) {
  auto path = path_of(req.target());
  auto is_get = req.method() == http::verb::get;
  if (path.substr(0, 5) == "/api/") {
    handle_api(ctx, req, path, std::move(reply));
  } else if (path != "/healthz" && path != "/readyz" && path != "/metrics" &&
             path != "/ws") {
    reply(not_found());
  } else if (!is_get) {
    reply(method_not_allowed());
  } else if (path == "/ws") {
    reply(error_response(http::status::upgrade_required, "upgrade_required",
                         "this endpoint needs a WebSocket upgrade"));
  } else if (path == "/healthz") {
    reply(healthz(ctx));
  } else if (path == "/readyz") {
    reply(readyz(ctx));
  } else {
    reply(metrics(ctx));
  }
}

namespace {

http_response refuse(server_context& ctx, rejection why, http::status status,
                     std::string_view code, std::string_view message,
                     std::string_view field = {}) {
  ctx.st.rejected(why);
  CAF_LOG_INFO("rejected handshake:" << CAF_ARG2("reason", to_label(why)));
  return error_response(status, code, message, field);
}

// Beast would refuse these in its accept with a plain-text body; checked
// here so that every error the node sends is JSON.
std::optional<http_response> check_handshake(server_context& ctx,
                                             const http_request& req) {
  constexpr std::size_t key_length = 24; // base64 of the 16-byte nonce
  auto key = req[http::field::sec_websocket_key];
  if (req.find(http::field::host) == req.end() || key.empty() || key.size() > key_length)
    return refuse(ctx, rejection::validation, http::status::bad_request, "bad_request",
                  "malformed WebSocket handshake (Host or Sec-WebSocket-Key)");
  if (req[http::field::sec_websocket_version] != "13") {
    auto res = refuse(ctx, rejection::validation, http::status::upgrade_required,
                      "upgrade_required", "Sec-WebSocket-Version must be 13");
    res.set(http::field::sec_websocket_version, "13");
    return res;
  }
  return std::nullopt;
}

// The JWT of an upgrade: `Authorization: Bearer T` wins over `token=T`.
std::optional<std::string> token_of(const http_request& req) {
  constexpr std::string_view scheme = "Bearer ";
  auto header = req[http::field::authorization];
  std::string_view value{header.data(), header.size()};
  if (value.size() > scheme.size() &&
      boost::beast::iequals(value.substr(0, scheme.size()), scheme))
    return std::string{value.substr(scheme.size())};
  if (auto query = query_param(req.target(), "token"); query && !query->empty())
    return query;
  return std::nullopt;
}

// jwt mode (SPEC section 2). The token is never logged, and the answer does
// not tell a forger which check failed.
std::variant<user_id, http_response> check_token(server_context& ctx,
                                                 const http_request& req,
                                                 std::optional<std::int64_t>* expires,
                                                 channel_grants* grants) {
  auto token = token_of(req);
  if (!token)
    return refuse(ctx, rejection::unauthorized, http::status::unauthorized,
                  "unauthorized", "a bearer token is required");
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto identity = verify_jwt(*token, ctx.opt.jwt_secret, now);
  if (!identity)
    return refuse(ctx, rejection::unauthorized, http::status::unauthorized,
                  "unauthorized", "invalid or expired token");
  if (expires)
    *expires = identity->expires;
  if (grants)
    *grants = std::move(identity->channels);
  return identity->user;
}

} // namespace

std::variant<user_id, http_response> check_upgrade(server_context& ctx,
                                                   const http_request& req,
                                                   std::optional<std::int64_t>* expires,
                                                   channel_grants* grants) {
  auto& origins = ctx.opt.allowed_origins;
  if (auto origin = req.find(http::field::origin);
      origin != req.end() && !origins.empty() &&
      std::find(origins.begin(), origins.end(), origin->value()) == origins.end()) {
    return refuse(ctx, rejection::forbidden_origin, http::status::forbidden,
                  "forbidden_origin", "origin not allowed");
  }
  if (auto bad = check_handshake(ctx, req))
    return std::move(*bad);
  if (ctx.opt.auth_mode == "jwt")
    return check_token(ctx, req, expires, grants);
  auto text = query_param(req.target(), "userId");
  if (!text || text->empty()) {
    return refuse(ctx, rejection::validation, http::status::bad_request, "validation",
                  "userId parameter is required", "userId");
  }
  auto user = parse_user_id(*text);
  if (!user) {
    return refuse(ctx, rejection::validation, http::status::bad_request, "validation",
                  "userId must be a valid number", "userId");
  }
  return *user;
}

// An offset too large for 64 bits is a decimal integer all the same: past
// the end of any stream, so it is not recovered rather than refused.
std::variant<recovery_request, http_response> check_recovery(server_context& ctx,
                                                             const http_request& req) {
  auto text = query_param(req.target(), "recover");
  if (!text)
    return recovery_request{};
  auto offset = decimal(*text);
  if (!offset)
    return refuse(ctx, rejection::validation, http::status::bad_request, "validation",
                  "recover must be a decimal integer >= 0", "recover");
  auto epoch = query_param(req.target(), "epoch");
  if (!epoch || epoch->empty())
    return refuse(ctx, rejection::validation, http::status::bad_request, "validation",
                  "epoch parameter is required with recover", "epoch");
  return recovery_request{stream_position{std::move(*epoch), *offset}};
}

} // namespace hubnode
