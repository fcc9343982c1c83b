// recover: --connections users connect and note their stream's position
// from the welcome (SPEC 8: epoch, offset), then disconnect. A sender
// connection sends --backlog messages to each of them, pipelined behind its
// acks: the bench has a WebSocket client and no HTTP one, one connection
// carries the whole backlog in a fraction of the time one HTTP request per
// message would take (that would measure the HTTP path, not recovery), and
// each ack confirms its message was accepted and kept. Then every user
// reconnects at once (at --concurrency handshakes in flight), to the next
// --url, with ?recover=OFFSET&epoch=EPOCH. Each must get `recovered: true` and exactly
// the missed offsets, in order, and nothing more: a ping after its last
// replayed message is answered after anything else the node had for it.
#include "bench/fleet.hpp"
#include "bench/frames.hpp"
#include "bench/histogram.hpp"
#include "bench/phases.hpp"
#include "bench/proc_stats.hpp"
#include "bench/redis_client.hpp"
#include "bench/rounded.hpp"
#include "bench/scenarios.hpp"
#include "bench/window_meter.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

namespace bench {

namespace {

// Messages of the backlog in flight (sent, not yet acked) at once.
constexpr std::uint64_t send_window = 1024;
// Bounds of the phases that wait for the node: far beyond a healthy one.
constexpr auto phase_budget = std::chrono::seconds(30);
constexpr auto per_user_budget = std::chrono::milliseconds(5);

enum class phase { connecting, closing, sending, reconnecting };

// Percent-encodes all but RFC 3986's unreserved characters: an epoch is
// opaque.
std::string url_encoded(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    }
  }
  return out;
}

double seconds_between(clock::time_point from, clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// What the nodes and Redis hold and have spent at one moment.
struct snapshot {
  std::uint64_t node_rss_kib = 0;
  double redis_cpu_s = 0;
  double redis_memory = 0;
};

struct phase_snapshots {
  snapshot before_backlog, after_backlog, after_reconnect;
};

// What the kept messages cost (compare with a run of --backlog=0) and what
// Redis spent on the backlog and on the recovery.
void report_costs(boost::json::object& out, const phase_snapshots& at, bool redis) {
  if (at.before_backlog.node_rss_kib > 0) {
    boost::json::object rss;
    rss["before_backlog"] = at.before_backlog.node_rss_kib;
    rss["after_backlog"] = at.after_backlog.node_rss_kib;
    out["node_rss_kib"] = std::move(rss);
  }
  if (!redis)
    return;
  boost::json::object r;
  r["backlog_cpu_s"] =
      rounded(at.after_backlog.redis_cpu_s - at.before_backlog.redis_cpu_s, 3);
  r["reconnect_cpu_s"] =
      rounded(at.after_reconnect.redis_cpu_s - at.after_backlog.redis_cpu_s, 3);
  r["used_memory_before_backlog"] = at.before_backlog.redis_memory;
  r["used_memory_after_backlog"] = at.after_backlog.redis_memory;
  out["redis"] = std::move(r);
}

class recovery final : public fleet::handler {
public:
  recovery(io_runner& io, const options& opts);
  boost::json::object run();

private:
  struct user {
    std::optional<std::string> epoch; // from the first welcome
    std::uint64_t offset = 0;
    bool back = false;      // welcomed again
    bool recovered = false; // the second welcome said recovered: true
    bool in_order = true;   // every replayed offset the next one
    std::uint64_t received = 0, extra = 0, without_offset = 0;
  };

  std::size_t sender() const { return users_.size(); }
  std::uint64_t backlog_size() const { return users_.size() * opts_.backlog; }

  void on_welcome(std::size_t slot, std::string_view welcome) override;
  void on_text(std::size_t slot, std::string_view frame) override;
  void on_end(std::size_t slot, std::string_view why) override;
  void on_message(std::size_t slot, std::string_view frame);
  void user_done(user& u);
  void close_users();
  void send_more();
  void reconnect_all();
  std::uint64_t ping_all();
  bool settled() const;
  snapshot take_snapshot(redisContext* redis) const;
  boost::json::object disconnect(clock::time_point start);
  boost::json::object send_backlog();
  boost::json::object reconnect();

  io_runner& io_;
  const options& opts_;
  std::vector<user> users_; // by slot; the sender is the slot after them
  fleet clients_;
  std::string frame_;
  // on the loop's thread
  phase phase_ = phase::connecting;
  std::uint64_t closed_ = 0;
  std::uint64_t next_ = 0, acks_ = 0, acks_offline_ = 0, send_errors_ = 0;
  clock::time_point reconnect_start_{}, last_done_{};
  std::uint64_t back_ = 0, recovered_ = 0, not_recovered_ = 0, done_ = 0;
  std::uint64_t reconnect_failures_ = 0, pongs_ = 0;
  std::uint64_t error_frames_ = 0, strays_ = 0;
  histogram recovered_after_;
};

recovery::recovery(io_runner& io, const options& opts)
    : io_(io), opts_(opts), users_(opts.connections),
      clients_(io.context(), opts, *this, opts.connections + 1) {}

void recovery::on_welcome(std::size_t slot, std::string_view welcome) {
  if (slot == sender())
    return;
  auto& u = users_[slot];
  if (phase_ == phase::connecting) {
    const auto epoch = read_string(welcome, R"("epoch":")");
    const auto offset = read_number(welcome, R"("offset":)");
    if (epoch && offset) {
      u.epoch = std::string(*epoch);
      u.offset = *offset;
    }
    return;
  }
  if (phase_ != phase::reconnecting || u.back)
    return;
  u.back = true;
  ++back_;
  u.recovered = welcome.find(R"("recovered":true)") != std::string_view::npos;
  if (!u.recovered)
    ++not_recovered_; // nothing follows: the client would reload elsewhere
  else if (opts_.backlog == 0)
    user_done(u);
}

void recovery::on_text(std::size_t slot, std::string_view frame) {
  if (is_type(frame, "error")) {
    ++error_frames_;
    if (slot == sender()) {
      ++send_errors_;
      send_more();
    }
  } else if (slot == sender() && is_type(frame, "ack")) {
    ++acks_;
    acks_offline_ += ack_offline(frame) ? 1 : 0;
    send_more();
  } else if (slot != sender() && is_type(frame, "message")) {
    on_message(slot, frame);
  } else if (slot != sender() && is_type(frame, "pong")) {
    ++pongs_;
  } else {
    ++strays_;
  }
}

void recovery::on_end(std::size_t slot, std::string_view why) {
  if (phase_ == phase::closing && slot != sender())
    ++closed_; // closed, or failed on the way out: gone either way
  else if (phase_ == phase::reconnecting && why != "closed")
    ++reconnect_failures_;
}

void recovery::on_message(std::size_t slot, std::string_view frame) {
  auto& u = users_[slot];
  if (!u.back) {
    ++strays_; // a live message while it was away: there should be none
    return;
  }
  if (u.received == opts_.backlog) {
    ++u.extra; // a duplicate, or more than was missed
    return;
  }
  const auto offset = read_number(frame, R"("offset":)");
  if (!offset)
    ++u.without_offset;
  else if (*offset != u.offset + 1 + u.received)
    u.in_order = false;
  if (++u.received == opts_.backlog)
    user_done(u);
}

void recovery::user_done(user&) {
  ++done_;
  last_done_ = clock::now();
  recovered_after_.record(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(last_done_ - reconnect_start_)
          .count()));
}

void recovery::close_users() {
  phase_ = phase::closing;
  for (std::size_t slot = 0; slot < users_.size(); ++slot) {
    if (auto* client = clients_.client(slot); client && client->welcomed())
      clients_.close(slot);
    else
      ++closed_; // never connected: nothing to close
  }
}

void recovery::send_more() {
  auto* client = clients_.client(sender());
  if (phase_ != phase::sending || client == nullptr || !client->welcomed())
    return;
  const auto n = users_.size();
  while (next_ < backlog_size() && next_ - acks_ - send_errors_ < send_window) {
    write_send(frame_, clients_.user(next_ % n), probe{sender(), next_, 0}, 0);
    client->send_text(frame_);
    ++next_;
  }
}

void recovery::reconnect_all() {
  phase_ = phase::reconnecting;
  reconnect_start_ = clock::now();
  slot_urls slots;
  for (std::size_t slot = 0; slot < users_.size(); ++slot) {
    const auto& u = users_[slot];
    if (u.epoch)
      clients_.set_query(slot, "&recover=" + std::to_string(u.offset) +
                                   "&epoch=" + url_encoded(*u.epoch));
    // The next node: a position must recover wherever the client lands.
    slots.emplace_back(slot, (slot + 1) % opts_.urls.size());
  }
  clients_.connect_queued(std::move(slots));
}

bool recovery::settled() const {
  return done_ + not_recovered_ + reconnect_failures_ >= users_.size();
}

std::uint64_t recovery::ping_all() {
  std::uint64_t sent = 0;
  for (std::size_t slot = 0; slot < users_.size(); ++slot) {
    if (auto* client = clients_.client(slot); client && client->welcomed()) {
      client->send_text(ping("after-replay"));
      ++sent;
    }
  }
  return sent;
}

snapshot recovery::take_snapshot(redisContext* redis) const {
  snapshot s;
  s.node_rss_kib = rss_kib(opts_.pids);
  if (redis != nullptr) {
    s.redis_cpu_s = redis_cpu_seconds(redis);
    s.redis_memory = redis_used_memory(redis);
  }
  return s;
}

boost::json::object recovery::disconnect(clock::time_point start) {
  io_.call([this] { close_users(); });
  io_.wait_until([this] { return closed_ >= users_.size(); },
                 from_now(phase_budget + per_user_budget * users_.size()));
  boost::json::object out;
  out["closed"] = io_.call([this] { return closed_; });
  out["seconds"] = rounded(seconds_between(start, clock::now()), 3);
  return out;
}

boost::json::object recovery::send_backlog() {
  const auto start = clock::now();
  io_.call([this] {
    phase_ = phase::sending;
    send_more();
  });
  io_.wait_until(
      [this] { return acks_ + send_errors_ >= next_ && next_ >= backlog_size(); },
      from_now(phase_budget + per_user_budget * users_.size()));
  const double took = seconds_between(start, clock::now());
  return io_.call([&] {
    boost::json::object out;
    out["per_user"] = opts_.backlog;
    out["sent"] = next_;
    out["acks"] = acks_;
    out["acks_offline"] = acks_offline_;
    out["errors"] = send_errors_;
    out["seconds"] = rounded(took, 3);
    out["per_s"] = rounded(static_cast<double>(acks_) / took);
    return out;
  });
}

boost::json::object recovery::reconnect() {
  io_.call([this] { reconnect_all(); });
  io_.wait_until([this] { return settled(); },
                 from_now(phase_budget + per_user_budget * users_.size()));
  // The replays are complete; whatever the node still sends comes before
  // the answer to a ping sent now.
  const auto pings = io_.call([this] { return ping_all(); });
  io_.wait_until([&] { return pongs_ >= pings; }, from_now(phase_budget));
  return io_.call([&] {
    boost::json::object out;
    std::uint64_t exact = 0, out_of_order = 0, missing = 0, extra = 0, without = 0;
    for (const auto& u : users_) {
      const bool complete = u.recovered && u.received == opts_.backlog;
      exact += complete && u.in_order && u.extra == 0 && u.without_offset == 0 ? 1 : 0;
      out_of_order += u.in_order ? 0 : 1;
      missing += u.recovered ? opts_.backlog - u.received : 0;
      extra += u.extra;
      without += u.without_offset;
    }
    const auto n = users_.size();
    out["users"] = n;
    out["welcomed"] = back_;
    out["recovered_true"] = back_ - not_recovered_;
    out["recovered_false"] = not_recovered_;
    out["all_recovered"] = done_ == n && not_recovered_ == 0;
    out["seconds_to_all_recovered"] =
        done_ == n ? boost::json::value(
                         rounded(seconds_between(reconnect_start_, last_done_), 3))
                   : boost::json::value(nullptr);
    out["recovered_after_us"] = recovered_after_.summary(1000);
    out["exact"] = exact;
    out["inexact"] = n - exact;
    out["users_out_of_order"] = out_of_order;
    out["missing"] = missing;
    out["extra"] = extra;
    out["without_offset"] = without;
    out["pings_answered"] = pongs_;
    out["failures"] = reconnect_failures_;
    return out;
  });
}

boost::json::object recovery::run() {
  boost::json::object out;
  out["connect"] =
      connect_all(io_, clients_, spread_over_urls(users_.size() + 1, opts_.urls.size()));
  out["positions"] = io_.call([this] {
    return std::count_if(users_.begin(), users_.end(),
                         [](const user& u) { return u.epoch.has_value(); });
  });
  out["disconnect"] = disconnect(clock::now());

  redis_context redis;
  if (!opts_.redis_url.empty())
    redis = redis_connect(opts_);
  const auto before_backlog = take_snapshot(redis.get());
  out["backlog"] = send_backlog();
  const auto after_backlog = take_snapshot(redis.get());
  window_meter meter(opts_.pids);
  auto result = reconnect();
  result["measured"] = meter.finish(io_.call([this] { return done_ * opts_.backlog; }));
  report_costs(out, {before_backlog, after_backlog, take_snapshot(redis.get())},
               redis != nullptr);
  io_.call([&] {
    clients_.report_errors(out, error_frames_, strays_);
    // A user that did not get exactly what it missed is an error too.
    out["errors"] = out["errors"].as_uint64() + result["inexact"].as_uint64();
  });
  out.insert(result.begin(), result.end());
  io_.call([this] { clients_.abort_all(); });
  return out;
}

} // namespace

boost::json::object run_recover(const options& opts) {
  return run_on_own_loop<recovery>(opts);
}

} // namespace bench
