// The HTTP surface of SPEC section 2: health, metrics, the /api/* routes and
// the checks an upgrade request must pass before a connection actor exists.
#pragma once

#include "src/base/log.hpp"

#include "src/net/server_context.hpp"

#include <boost/beast/http.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <variant>

namespace hubnode {

namespace http = boost::beast::http;

using http_request = http::request<http::string_body>;
using http_response = http::response<http::string_body>;
// Called exactly once with the answer, possibly from an actor's thread.
using responder = std::function<void(http_response)>;

// Answers every route except an upgrade of /ws.
void handle_http(server_context& ctx, const http_request& req, responder reply);

// Origin and identity checks of a /ws upgrade: the user to admit, or the
// rejection to send. In jwt mode `expires` (when given) receives the token's
// `exp` in unix seconds, if it has one, and `grants` its channels claim.
std::variant<user_id, http_response>
check_upgrade(server_context& ctx, const http_request& req,
              std::optional<std::int64_t>* expires = nullptr,
              channel_grants* grants = nullptr);

// The upgrade's `recover=OFFSET&epoch=EPOCH` (SPEC section 8): the position
// to recover from (none without `recover`), or the 400 to send.
std::variant<recovery_request, http_response> check_recovery(server_context& ctx,
                                                             const http_request& req);

// A JSON error body of SPEC section 2.
http_response error_response(http::status status, std::string_view code,
                             std::string_view message, std::string_view field = {});

// The answer to an upgrade the hub refused (node or user full).
http_response admission_response(admission why);

} // namespace hubnode
