#include "src/log.hpp"
#define CAF_LOG_COMPONENT "http"

#include "src/websocket_session.hpp"

#include "actors/connection.hpp"
#include "src/protocol.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include "caf/send.hpp"

namespace hubnode {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// How long a close frame may take to go out before the socket is dropped: a
// peer that stopped reading never lets it through.
caf::timespan close_bound(const node_options& opt) {
  return std::min<caf::timespan>(std::chrono::seconds(1), opt.shutdown_timeout / 2);
}

// Beast reserves its read size in the buffer before any byte arrives, so an
// idle connection would hold 1.5 KiB for nothing. The first read of a message
// asks for little (most frames fit), the rest of a longer message in big
// steps; buffers that grew for a large message are given back afterwards.
constexpr std::size_t first_read = 128;
constexpr std::size_t next_read = 64 * 1024;
constexpr std::size_t idle_buffer_limit = 4096;

// The time left until `expires` (unix seconds) as a delay for the actor
// clock; nothing for a token without `exp` or one that outlives any
// connection (more than ten years away).
std::optional<caf::timespan> lifetime_of(std::optional<std::int64_t> expires) {
  using namespace std::chrono;
  if (!expires)
    return std::nullopt;
  auto now = system_clock::now().time_since_epoch();
  constexpr std::int64_t ten_years = 10LL * 366 * 24 * 3600;
  if (*expires - duration_cast<seconds>(now).count() > ten_years)
    return std::nullopt;
  return duration_cast<caf::timespan>(seconds{*expires} - now);
}

std::string remote_of(const tcp::socket& socket) {
  beast::error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec)
    return "unknown";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

bool is_client_close(beast::error_code ec) {
  return ec == websocket::error::closed || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe;
}

// Beast has already sent the close frame for these; the actor is told why.
std::uint16_t violation_code(beast::error_code ec) {
  if (ec == websocket::error::message_too_big)
    return close_code::too_big;
  if (ec == websocket::error::bad_frame_payload)
    return close_code::invalid_payload;
  if (ec == websocket::condition::protocol_violation)
    return 1002;
  return 0;
}

} // namespace

websocket_session::websocket_session(tcp::socket&& socket, server_context& ctx)
    : ws_(std::move(socket)), ctx_(ctx) {}

template <class F>
void websocket_session::on_strand(F&& f) {
  net::dispatch(ws_.get_executor(), [self = shared_from_this(),
                                     f = std::forward<F>(f)]() mutable { f(*self); });
}

void websocket_session::run(http_request req, user_id user,
                            std::optional<std::int64_t> expires) {
  request_ = std::make_unique<http_request>(std::move(req));
  actor_ = spawn_connection(ctx_.system, ctx_.connection, ctx_.hub, ctx_.presence,
                            ctx_.st, shared_from_this(), user,
                            remote_of(ws_.next_layer()), lifetime_of(expires));
  // However the actor ends, its socket must not outlive it.
  actor_->attach_functor([weak = weak_from_this()](const caf::error&) {
    if (auto self = weak.lock())
      self->close(close_code::going_away);
  });
}

void websocket_session::accept() {
  on_strand([](websocket_session& self) { self.do_accept(); });
}

void websocket_session::do_accept() {
  if (!request_ || gone_)
    return;
  ws_.set_option(websocket::stream_base::timeout{ctx_.opt.handshake_timeout,
                                                 websocket::stream_base::none(), false});
  ws_.read_message_max(ctx_.opt.max_message_size);
  ws_.auto_fragment(false);
  ws_.text(true);
  ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
    if (kind == websocket::frame_type::pong)
      caf::anon_send(actor_, activity_atom::value);
  });
  ws_.async_accept(*request_, beast::bind_front_handler(&websocket_session::on_accept,
                                                        shared_from_this()));
}

void websocket_session::on_accept(beast::error_code ec) {
  request_.reset();
  if (ec) {
    caf::anon_send(actor_, closed_atom::value, close_reason::error);
    return fail(ec);
  }
  open_ = true;
  caf::anon_send(actor_, upgraded_atom::value);
  if (closing_)
    return start_close();
  do_read();
}

void websocket_session::reject(admission why) {
  on_strand([why](websocket_session& self) { self.do_reject(why); });
}

void websocket_session::do_reject(admission why) {
  request_.reset();
  rejection_ = std::make_unique<http_response>(admission_response(why));
  rejection_->keep_alive(false);
  rejection_->prepare_payload();
  // A few hundred bytes: the socket buffer takes them even from a client
  // that does not read, so this write needs no deadline of its own.
  http::async_write(ws_.next_layer(), *rejection_,
                    [self = shared_from_this()](beast::error_code, std::size_t) {
                      self->rejection_.reset();
                      self->drop();
                    });
}

void websocket_session::do_read() {
  ws_.async_read_some(
      buffer_, buffer_.size() == 0 ? first_read : next_read,
      beast::bind_front_handler(&websocket_session::on_read, shared_from_this()));
}

void websocket_session::on_read(beast::error_code ec, std::size_t) {
  if (ec) {
    if (auto code = violation_code(ec); code != 0)
      caf::anon_send(actor_, violation_atom::value, code);
    else if (!closing_)
      caf::anon_send(actor_, closed_atom::value,
                     is_client_close(ec) ? close_reason::client : close_reason::error);
    return fail(ec);
  }
  if (!ws_.is_message_done())
    return do_read();
  if (ws_.got_text()) {
    auto text = beast::buffers_to_string(buffer_.data());
    caf::anon_send(actor_, frame_atom::value, protocol::parse_request(text));
  } else {
    caf::anon_send(actor_, violation_atom::value, close_code::unsupported);
  }
  buffer_.consume(buffer_.size());
  if (buffer_.capacity() > idle_buffer_limit)
    buffer_.shrink_to_fit();
  do_read();
}

void websocket_session::write(std::vector<payload> frames) {
  on_strand([frames = std::move(frames)](websocket_session& self) mutable {
    if (!self.open_ || self.closing_ || self.gone_ || !self.writing_.empty())
      return;
    self.writing_ = std::move(frames);
    self.write_index_ = 0;
    self.write_bytes_ = 0;
    self.do_write();
  });
}

void websocket_session::do_write() {
  auto& frame = *writing_[write_index_];
  ws_.async_write(
      net::buffer(frame.data(), frame.size()),
      beast::bind_front_handler(&websocket_session::on_write, shared_from_this()));
}

void websocket_session::on_write(beast::error_code ec, std::size_t) {
  if (ec)
    return fail(ec);
  write_bytes_ += writing_[write_index_]->size();
  if (++write_index_ < writing_.size())
    return do_write();
  writing_ = {};
  caf::anon_send(actor_, written_atom::value, write_bytes_);
}

void websocket_session::ping() {
  on_strand([](websocket_session& self) { self.do_ping(); });
}

void websocket_session::do_ping() {
  if (!open_ || closing_ || gone_ || ping_pending_)
    return;
  ping_pending_ = true;
  ws_.async_ping({}, [self = shared_from_this()](beast::error_code ec) {
    self->ping_pending_ = false;
    if (ec)
      return self->fail(ec);
    if (self->closing_)
      self->start_close();
  });
}

void websocket_session::close(std::uint16_t code) {
  on_strand([code](websocket_session& self) { self.do_close(code); });
}

void websocket_session::do_close(std::uint16_t code) {
  if (closing_ || gone_ || rejection_)
    return;
  closing_ = true;
  close_code_ = code;
  close_deadline_ = std::make_unique<boost::asio::steady_timer>(ws_.get_executor());
  close_deadline_->expires_after(close_bound(ctx_.opt));
  close_deadline_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec)
      self->drop();
  });
  if (!open_ && !request_)
    return drop();
  // An accept or a ping in flight finishes first; their handlers continue.
  if (open_ && !ping_pending_)
    start_close();
}

void websocket_session::start_close() {
  ws_.async_close(
      websocket::close_reason{close_code_},
      beast::bind_front_handler(&websocket_session::on_close, shared_from_this()));
}

void websocket_session::on_close(beast::error_code ec) {
  if (ec)
    fail(ec);
}

void websocket_session::fail(beast::error_code ec) {
  if (ec != net::error::operation_aborted)
    CAF_LOG_DEBUG("websocket ended:" << CAF_ARG2("error", ec.message()));
  drop();
}

void websocket_session::drop() {
  if (gone_)
    return;
  gone_ = true;
  if (close_deadline_)
    close_deadline_->cancel();
  beast::error_code ec;
  ws_.next_layer().shutdown(tcp::socket::shutdown_both, ec);
  ws_.next_layer().close(ec);
}

} // namespace hubnode
