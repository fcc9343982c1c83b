#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "http"

#include "src/net/websocket_session.hpp"

#include "actors/connection.hpp"
#include "src/base/close_code.hpp"
#include "src/wire/protocol.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <iterator>
#include <sstream>
#include <utility>

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

// One read buffer per I/O thread, not one per connection: a connection waits
// for readability with no buffer and reads only when bytes are there.
constexpr std::size_t read_buffer_size = 64 * 1024;

std::uint64_t bytes_of(const std::vector<payload>& frames) {
  std::uint64_t bytes = 0;
  for (const auto& frame : frames)
    bytes += frame->size();
  return bytes;
}

char* read_buffer() {
  thread_local std::vector<char> buffer(read_buffer_size);
  return buffer.data();
}

// Reads per readiness before the connection yields its thread: a client
// sending without pause must not starve the others.
constexpr int reads_per_turn = 16;

// Asio hands an operation the cached memory of the thread's last finished
// one if it is large enough, whatever its size: the wait an idle connection
// keeps pending would sit in the block of a far larger write (the 101
// response's is over 400 bytes) for the connection's whole life. With an
// allocator of its own it takes its own size.
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() = default;
  template <class U>
  exact_allocator(const exact_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  template <class U>
  bool operator==(const exact_allocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const exact_allocator<U>&) const noexcept {
    return false;
  }
};

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
  return ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe;
}

// RFC 6455 4.2.2: check_upgrade has already refused a missing or malformed key.
http_response switching_protocols(const http_request& req) {
  namespace detail = beast::websocket::detail;
  detail::sec_ws_accept_type accept;
  detail::make_sec_ws_accept(accept, req[http::field::sec_websocket_key]);
  http_response res{http::status::switching_protocols, req.version()};
  res.set(http::field::upgrade, "websocket");
  res.set(http::field::connection, "Upgrade");
  res.set(http::field::sec_websocket_accept,
          beast::string_view(accept.data(), accept.size()));
  return res;
}

} // namespace

websocket_session::websocket_session(tcp::socket&& socket, server_context& ctx,
                                     admissions::token handshake)
    : socket_(std::move(socket)), ctx_(ctx), decoder_(ctx.opt.max_message_size),
      handshake_(std::move(handshake)), listed_(ctx.sockets, *this) {}

template <class F>
void websocket_session::on_strand(F&& f) {
  net::dispatch(socket_.get_executor(), [self = shared_from_this(),
                                         f = std::forward<F>(f)]() mutable { f(*self); });
}

void websocket_session::run(http_request req, user_id user,
                            std::optional<std::int64_t> expires, recovery_request recover,
                            channel_grants grants) {
  request_ = std::make_unique<http_request>(std::move(req));
  actor_ =
      spawn_connection(ctx_.system, ctx_.connection, ctx_.hub, ctx_.presence, ctx_.st,
                       shared_from_this(), user, remote_of(socket_), lifetime_of(expires),
                       std::move(recover), ctx_.channels, std::move(grants));
  // However the actor ends, its socket must not outlive it.
  actor_->attach_functor([weak = weak_from_this()](const caf::error&) {
    if (auto self = weak.lock())
      self->close(close_code::going_away);
  });
}

// -- the upgrade --------------------------------------------------------------

void websocket_session::accept(payload welcome) {
  on_strand([welcome = std::move(welcome)](websocket_session& self) mutable {
    self.do_accept(std::move(welcome));
  });
}

// The 101 response and the welcome frame in one gathered write. A few
// hundred bytes: the socket buffer takes them even from a client that does
// not read, so this write needs no deadline of its own.
void websocket_session::do_accept(payload welcome) {
  if (phase_ != phase::admitting)
    return;
  handshake_.release();
  phase_ = phase::upgrading;
  std::ostringstream head;
  head << switching_protocols(*request_);
  control_ = head.str();
  request_.reset();
  frames_ = {std::move(welcome)};
  auto buffers = frame_buffers();
  buffers.insert(buffers.begin(), net::buffer(control_));
  wire_ = wire::control; // a close asked for meanwhile waits for this write
  net::async_write(
      socket_, buffers,
      beast::bind_front_handler(&websocket_session::on_accept, shared_from_this()));
}

void websocket_session::on_accept(beast::error_code ec, std::size_t) {
  wire_ = wire::idle;
  control_ = {};
  frames_ = {};
  headers_ = {};
  if (ec) {
    caf::anon_send(actor_, closed_atom::value, close_reason::error);
    return fail(ec);
  }
  if (phase_ == phase::upgrading)
    phase_ = phase::open;
  caf::anon_send(actor_, upgraded_atom::value);
  // Reads never block: a socket without bytes answers would_block.
  socket_.non_blocking(true, ec);
  if (ec)
    return fail(ec);
  do_read();
  do_write(); // a close that came during the upgrade
}

void websocket_session::reject(admission why) {
  on_strand([why](websocket_session& self) { self.do_reject(why); });
}

void websocket_session::do_reject(admission why) {
  if (phase_ != phase::admitting)
    return;
  handshake_.release();
  phase_ = phase::rejecting;
  request_.reset();
  response_ = std::make_unique<http_response>(admission_response(why));
  response_->keep_alive(false);
  response_->prepare_payload();
  http::async_write(socket_, *response_,
                    [self = shared_from_this()](beast::error_code, std::size_t) {
                      self->response_.reset();
                      self->drop();
                    });
}

// -- reading ------------------------------------------------------------------

void websocket_session::do_read() {
  reading_ = true;
  socket_.async_wait(
      tcp::socket::wait_read,
      net::bind_allocator(
          exact_allocator<void>{},
          beast::bind_front_handler(&websocket_session::on_read, shared_from_this())));
}

// Asio's reactor is edge-triggered: once woken, the session reads until the
// socket has nothing more, or yields and comes back by a post. A read that
// did not fill the buffer emptied the socket: waiting again at once saves
// the read that would only say so, and loses nothing, because starting a
// wait re-arms the descriptor (epoll_ctl MOD), which reports data that
// arrived in between.
void websocket_session::on_read(beast::error_code ec) {
  reading_ = false;
  for (int i = 0; i < reads_per_turn && !ec; ++i) {
    auto n = socket_.read_some(net::buffer(read_buffer(), read_buffer_size), ec);
    if (ec == net::error::would_block)
      return do_read();
    if (!ec && !on_bytes(read_buffer(), n))
      return;
    if (!ec && n < read_buffer_size)
      return do_read();
  }
  if (!ec) {
    reading_ = true;
    return net::post(
        socket_.get_executor(),
        beast::bind_front_handler(&websocket_session::on_read, shared_from_this(), ec));
  }
  // The actor decided to close, or already knows how the socket ended.
  if (phase_ != phase::closing && phase_ != phase::draining)
    caf::anon_send(actor_, closed_atom::value,
                   is_client_close(ec) ? close_reason::client : close_reason::error);
  fail(ec);
}

// Decodes every whole frame in `data`; the rest waits in partial_ for the
// next read. False: stop reading (the client broke the protocol).
bool websocket_session::on_bytes(char* data, std::size_t size) {
  if (phase_ != phase::open)
    return phase_ != phase::gone; // after a close only EOF matters
  bool joined = !partial_.empty();
  if (joined) {
    partial_.append(data, size);
    data = partial_.data();
    size = partial_.size();
  }
  inbound_batch requests;
  std::size_t used = 0;
  for (;;) {
    auto event = decoder_.decode(data + used, size - used);
    if (event.type == ws::frame_event::kind::incomplete)
      break;
    used += event.used;
    if (event.type == ws::frame_event::kind::text) {
      requests.push_back(protocol::parse_request(event.payload));
      continue;
    }
    hand_over(requests); // what the client sent before this frame comes first
    if (!on_event(event)) {
      std::string().swap(partial_);
      return phase_ == phase::closing;
    }
  }
  hand_over(requests);
  if (joined)
    partial_.erase(0, used);
  else
    partial_.assign(data + used, size - used);
  if (partial_.empty())
    std::string().swap(partial_); // the frame is complete: give its memory back
  return true;
}

// The requests of one read go to the actor as one message: a client with
// several messages in flight sends them in one segment, and each message the
// actor does not get is a mailbox element, a schedule and a resume saved.
void websocket_session::hand_over(inbound_batch& requests) {
  if (!requests.empty())
    caf::anon_send(actor_, frame_atom::value, std::exchange(requests, {}));
}

// Every frame but text. False: decode no further.
bool websocket_session::on_event(const ws::frame_event& event) {
  using kind = ws::frame_event::kind;
  switch (event.type) {
  case kind::ping:
    // RFC 6455 5.5.3: answering only the latest of several pings is enough.
    pong_ = ws::encode_control(ws::opcode::pong, event.payload);
    do_write();
    return true;
  case kind::pong:
    caf::anon_send(actor_, activity_atom::value);
    return true;
  case kind::close:
    on_client_close(event.code);
    return false;
  case kind::violation:
    caf::anon_send(actor_, violation_atom::value, event.code);
    return false;
  case kind::text: // on_bytes collects them
  case kind::fragment:
  case kind::incomplete:
    break;
  }
  return true;
}

// The client started the close handshake: its code goes back to it once the
// write on the wire is done.
void websocket_session::on_client_close(std::uint16_t code) {
  caf::anon_send(actor_, closed_atom::value, close_reason::client);
  start_closing(code);
}

// -- writing ------------------------------------------------------------------

// Counted before the post: the actor's next look at unsent_bytes() already
// includes them.
void websocket_session::write(std::vector<payload> frames) {
  unsent_ += bytes_of(frames);
  on_strand([frames = std::move(frames)](websocket_session& self) mutable {
    if (self.phase_ != phase::open)
      return;
    if (self.queued_.empty())
      self.queued_ = std::move(frames);
    else
      self.queued_.insert(self.queued_.end(), std::make_move_iterator(frames.begin()),
                          std::make_move_iterator(frames.end()));
    self.do_write();
  });
}

std::uint64_t websocket_session::unsent_bytes() const {
  return unsent_.load(std::memory_order_relaxed);
}

// Starts the next write, if one is due and none is on the wire: pongs first,
// then pings, the actor's frames, and the close frame last. A close asked for
// during the upgrade waits for the 101 response to go out.
void websocket_session::do_write() {
  if (wire_ != wire::idle || response_ || phase_ < phase::open || phase_ > phase::closing)
    return;
  if (!pong_.empty())
    return write_control(wire::control, std::exchange(pong_, {}));
  if (ping_due_) {
    ping_due_ = false;
    return write_control(wire::control, ws::encode_control(ws::opcode::ping));
  }
  if (!queued_.empty())
    return write_frames();
  if (phase_ == phase::closing)
    write_control(wire::close, ws::encode_close(close_code_));
}

void websocket_session::write_frames() {
  wire_ = wire::frames;
  frames_ = std::exchange(queued_, {});
  net::async_write(
      socket_, frame_buffers(),
      beast::bind_front_handler(&websocket_session::on_write, shared_from_this()));
}

// One gathered write of frames_: each frame's header of its own, the payload
// shared with every other recipient of the message.
std::vector<net::const_buffer> websocket_session::frame_buffers() {
  headers_.reserve(frames_.size());
  for (const auto& frame : frames_)
    headers_.push_back(ws::encode_header(ws::opcode::text, frame->size()));
  std::vector<net::const_buffer> buffers;
  buffers.reserve(2 * frames_.size() + 1);
  for (std::size_t i = 0; i < frames_.size(); ++i) {
    buffers.emplace_back(headers_[i].bytes.data(), headers_[i].size);
    buffers.emplace_back(frames_[i]->data(), frames_[i]->size());
  }
  return buffers;
}

void websocket_session::write_control(wire kind, std::string frame) {
  control_ = std::move(frame);
  wire_ = kind;
  net::async_write(
      socket_, net::buffer(control_),
      beast::bind_front_handler(&websocket_session::on_write, shared_from_this()));
}

void websocket_session::on_write(beast::error_code ec, std::size_t) {
  auto done = std::exchange(wire_, wire::idle);
  if (ec)
    return fail(ec);
  if (done == wire::frames) {
    unsent_ -= bytes_of(frames_);
    frames_ = {};
    headers_ = {};
  }
  control_ = {};
  if (done == wire::close)
    return on_close_sent();
  do_write();
}

// -- pings and closing --------------------------------------------------------

void websocket_session::ping() {
  on_strand([](websocket_session& self) { self.do_ping(); });
}

void websocket_session::do_ping() {
  if (phase_ != phase::open)
    return;
  ping_due_ = true;
  do_write();
}

void websocket_session::close(std::uint16_t code) {
  on_strand([code](websocket_session& self) { self.do_close(code); });
}

void websocket_session::do_close(std::uint16_t code) {
  if (phase_ == phase::admitting)
    return drop(); // the actor ended before it was admitted
  if (phase_ == phase::upgrading || phase_ == phase::open)
    start_closing(code);
}

void websocket_session::start_closing(std::uint16_t code) {
  phase_ = phase::closing;
  close_code_ = code;
  close_deadline_ = std::make_unique<net::steady_timer>(socket_.get_executor());
  close_deadline_->expires_after(close_bound(ctx_.opt));
  close_deadline_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec)
      self->drop();
  });
  do_write();
}

// RFC 6455 7.1.1: the server ends the TCP connection first. Shutting the
// sending side tells the client; its EOF (or the deadline) ends the socket.
void websocket_session::on_close_sent() {
  phase_ = phase::draining;
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (!reading_)
    do_read();
}

// The reference goes with the handler (see http_session::force_close).
void websocket_session::force_close() {
  if (auto self = weak_from_this().lock())
    net::post(socket_.get_executor(), [self = std::move(self)] { self->drop(); });
}

void websocket_session::fail(beast::error_code ec) {
  if (ec != net::error::operation_aborted && ec != net::error::eof)
    CAF_LOG_DEBUG("websocket ended:" << CAF_ARG2("error", ec.message()));
  drop();
}

void websocket_session::drop() {
  if (phase_ == phase::gone)
    return;
  phase_ = phase::gone;
  handshake_.release();
  if (close_deadline_)
    close_deadline_->cancel();
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

} // namespace hubnode
