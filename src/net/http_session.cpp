#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "http"

#include "src/net/http_session.hpp"

#include "src/net/websocket_session.hpp"

#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

namespace hubnode {

namespace net = boost::asio;

namespace {

// Beast's default header limit is 8 KiB; browsers with many cookies exceed
// it, and anything past 16 KiB is abuse.
constexpr std::uint32_t header_limit = 16 * 1024;

} // namespace

http_session::http_session(beast::tcp_stream&& stream, server_context& ctx)
    : stream_(std::move(stream)), ctx_(ctx), handshake_(ctx.admitting),
      listed_(ctx.sockets, *this) {}

void http_session::run() {
  net::dispatch(stream_.get_executor(),
                beast::bind_front_handler(&http_session::do_read, shared_from_this()));
}

void http_session::do_read() {
  parser_.emplace();
  parser_->header_limit(header_limit);
  parser_->body_limit(ctx_.opt.max_message_size);
  // One deadline for the whole request: a client trickling bytes gets no
  // more time than one that sends nothing.
  stream_.expires_after(ctx_.opt.handshake_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&http_session::on_read, shared_from_this()));
}

void http_session::on_read(beast::error_code ec, std::size_t) {
  if (ec == http::error::end_of_stream)
    return do_close();
  if (ec == beast::error::timeout) {
    // A keep-alive connection idling after a served request is not a failed
    // handshake; a first request that never completes is.
    if (!served_ || parser_->got_some() || buffer_.size() > 0) {
      ctx_.st.rejected(rejection::timeout);
      CAF_LOG_INFO("rejected handshake: request not complete within handshake-timeout");
    }
    return; // the stream is already closed by its deadline
  }
  if (ec == http::error::body_limit) {
    keep_alive_ = false;
    return send(error_response(http::status::payload_too_large, "too_large",
                               "request body exceeds server.max-message-size"));
  }
  if (ec == http::error::header_limit) {
    keep_alive_ = false;
    return send(error_response(http::status::request_header_fields_too_large,
                               "headers_too_large", "request headers are too large"));
  }
  if (ec)
    return fail(ec, "read");
  handle(parser_->release());
}

void http_session::handle(http_request req) {
  served_ = true;
  keep_alive_ = req.keep_alive();
  auto target = req.target();
  if (beast::websocket::is_upgrade(req) && target.substr(0, target.find('?')) == "/ws")
    return upgrade(std::move(req));
  handshake_.release();
  auto self = shared_from_this();
  handle_http(ctx_, req, [self](http_response res) {
    net::post(self->stream_.get_executor(),
              [self, res = std::move(res)]() mutable { self->send(std::move(res)); });
  });
}

void http_session::upgrade(http_request req) {
  std::optional<std::int64_t> expires;
  channel_grants grants;
  auto checked = check_upgrade(ctx_, req, &expires, &grants);
  if (auto res = std::get_if<http_response>(&checked)) {
    keep_alive_ = false;
    return send(std::move(*res));
  }
  auto recover = check_recovery(ctx_, req);
  if (auto res = std::get_if<http_response>(&recover)) {
    keep_alive_ = false;
    return send(std::move(*res));
  }
  std::make_shared<websocket_session>(stream_.release_socket(), ctx_,
                                      std::move(handshake_))
      ->run(std::move(req), std::get<user_id>(checked), expires,
            std::move(std::get<recovery_request>(recover)), std::move(grants));
}

void http_session::send(http_response res) {
  res.keep_alive(keep_alive_);
  res.prepare_payload();
  auto msg = std::make_shared<http_response>(std::move(res));
  auto close = msg->need_eof();
  stream_.expires_after(ctx_.opt.handshake_timeout);
  http::async_write(
      stream_, *msg,
      [self = shared_from_this(), msg, close](beast::error_code ec, std::size_t bytes) {
        self->on_write(close, ec, bytes);
      });
}

void http_session::on_write(bool close, beast::error_code ec, std::size_t) {
  if (ec)
    return fail(ec, "write");
  if (close)
    return do_close();
  do_read();
}

void http_session::fail(beast::error_code ec, const char* what) {
  if (ec != net::error::operation_aborted)
    CAF_LOG_DEBUG("http session ended:" << CAF_ARG(what)
                                        << CAF_ARG2("error", ec.message()));
  do_close();
}

// The reference goes with the handler: kept here, it could be the last one
// once the io thread has run the handler, and the session would end on this
// thread inside open_sockets::close_all() (see closable).
void http_session::force_close() {
  if (auto self = weak_from_this().lock())
    net::post(stream_.get_executor(), [self = std::move(self)] { self->do_close(); });
}

void http_session::do_close() {
  beast::error_code ec;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
  stream_.close();
}

} // namespace hubnode
