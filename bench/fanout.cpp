// fanout: one channel (SPEC 8), --connections subscribers and one
// publisher, subscribed too (only a subscriber may publish), spread over
// the --urls. Closed loop keeps --window publications in flight: one leaves
// the window when its `published` has come back and every subscriber has
// it, so the node's queues stay bounded. Open loop publishes --rate
// publications/s on a fixed schedule and measures latency from the
// scheduled time. Every subscriber checks the channel's offsets from its
// `subscribed` offset on. Subscribe answers are awaited and their errors
// reported by code: a node that cannot serve channels (Redis down in
// cluster mode) answers `unavailable`, and the run says so instead of
// publishing into nothing.
#include "bench/fleet.hpp"
#include "bench/frames.hpp"
#include "bench/histogram.hpp"
#include "bench/pacer.hpp"
#include "bench/phases.hpp"
#include "bench/proc_stats.hpp"
#include "bench/rounded.hpp"
#include "bench/scenarios.hpp"
#include "bench/window_meter.hpp"

#include <charconv>
#include <deque>
#include <map>
#include <stdexcept>

namespace bench {

namespace {

// A healthy node answers a subscribe within milliseconds.
constexpr auto subscribe_timeout = std::chrono::seconds(30);

// The sequence a publish carried as its ref, echoed by `published` and `error`.
std::optional<std::uint64_t> ref_seq(std::string_view frame) {
  const auto ref = read_string(frame, R"("ref":")");
  std::uint64_t seq = 0;
  if (!ref ||
      std::from_chars(ref->data(), ref->data() + ref->size(), seq).ec != std::errc{})
    return std::nullopt;
  return seq;
}

class fanout final : public fleet::handler {
public:
  fanout(io_runner& io, const options& opts);
  boost::json::object run();

private:
  struct subscriber {
    bool answered = false; // subscribed or error
    bool subscribed = false;
    std::uint64_t start = 0;  // the channel's offset when it became live
    std::uint64_t expect = 0; // the next offset
    std::uint64_t received = 0;
  };

  std::size_t publisher() const { return subs_.size() - 1; }
  bool open_loop() const { return opts_.rate > 0; }
  std::int64_t now_ns() const;

  void on_text(std::size_t slot, std::string_view frame) override;
  void on_subscribed(std::size_t slot, std::string_view frame);
  void on_publication(std::size_t slot, std::string_view frame);
  void on_published(std::string_view frame);
  void on_error(std::size_t slot, std::string_view frame);
  void subscribe_all();
  void start_sending();
  void stop_sending();
  void publish(std::int64_t sent_ns);
  // Closed loop: one part (a delivery, the `published`) of `seq` arrived;
  // `all` when the publication failed and nothing more of it will come.
  void settle(std::uint64_t seq, bool all = false);
  bool drained() const;
  boost::json::object subscribe_report() const;
  boost::json::object results(const window_meter& meter) const;

  io_runner& io_;
  const options& opts_;
  std::string channel_;
  std::vector<subscriber> subs_; // by slot; the last slot is the publisher
  fleet clients_;
  pacer pacer_;
  std::string frame_; // reused for every publish
  clock::time_point epoch_ = clock::now();
  bool sending_ = false;
  std::uint64_t subscribe_sent_ = 0, subscribe_answers_ = 0;
  std::uint64_t subscribed_ = 0; // subscribers, the publisher not counted
  // Closed loop: the parts still missing of each publication in flight, by
  // sequence from first_in_flight_ (a late one may hold the front).
  std::deque<std::uint64_t> missing_;
  std::uint64_t first_in_flight_ = 0, in_flight_ = 0;
  // counters
  std::uint64_t sent_ = 0, unsent_ = 0, published_ = 0, published_in_window_ = 0;
  std::uint64_t top_offset_ = 0, publish_errors_ = 0;
  std::uint64_t deliveries_ = 0, deliveries_in_window_ = 0, publisher_received_ = 0;
  std::uint64_t order_violations_ = 0, error_frames_ = 0, strays_ = 0;
  std::map<std::string, std::uint64_t, std::less<>> error_codes_;
  histogram latency_;
};

fanout::fanout(io_runner& io, const options& opts)
    : io_(io), opts_(opts), channel_("bench-fanout-" + std::to_string(opts.user_base)),
      subs_(opts.connections + 1), clients_(io.context(), opts, *this, subs_.size()),
      pacer_(io.context()) {}

std::int64_t fanout::now_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - epoch_)
      .count();
}

void fanout::on_text(std::size_t slot, std::string_view frame) {
  if (is_type(frame, "publication"))
    on_publication(slot, frame);
  else if (is_type(frame, "published"))
    on_published(frame);
  else if (is_type(frame, "subscribed"))
    on_subscribed(slot, frame);
  else if (is_type(frame, "error"))
    on_error(slot, frame);
  else
    ++strays_;
}

void fanout::on_subscribed(std::size_t slot, std::string_view frame) {
  auto& s = subs_[slot];
  if (s.answered) {
    ++strays_;
    return;
  }
  s.answered = s.subscribed = true;
  ++subscribe_answers_;
  s.start = read_number(frame, R"("offset":)").value_or(0);
  s.expect = s.start + 1;
  subscribed_ += slot == publisher() ? 0 : 1;
}

void fanout::on_publication(std::size_t slot, std::string_view frame) {
  if (slot == publisher()) {
    ++publisher_received_; // its own copy: not a delivery
    return;
  }
  auto& s = subs_[slot];
  const auto offset = read_number(frame, R"("offset":)");
  const auto p = read_probe(frame);
  if (!s.subscribed || !offset || !p) {
    ++strays_;
    return;
  }
  ++deliveries_;
  deliveries_in_window_ += sending_ ? 1 : 0;
  ++s.received;
  latency_.record(
      static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ns() - p->sent_ns)));
  if (*offset != s.expect)
    ++order_violations_;
  s.expect = std::max(s.expect, *offset + 1);
  settle(p->seq);
}

void fanout::on_published(std::string_view frame) {
  ++published_;
  published_in_window_ += sending_ ? 1 : 0;
  top_offset_ = std::max(top_offset_, read_number(frame, R"("offset":)").value_or(0));
  if (const auto seq = ref_seq(frame))
    settle(*seq);
}

void fanout::on_error(std::size_t slot, std::string_view frame) {
  ++error_frames_;
  ++error_codes_[std::string(read_string(frame, R"("code":")").value_or("?"))];
  auto& s = subs_[slot];
  if (!s.answered) { // the answer to its subscribe
    s.answered = true;
    ++subscribe_answers_;
    return;
  }
  if (slot != publisher())
    return;
  ++publish_errors_;
  if (const auto seq = ref_seq(frame))
    settle(*seq, true);
}

void fanout::settle(std::uint64_t seq, bool all) {
  if (open_loop() || seq < first_in_flight_ || seq - first_in_flight_ >= missing_.size())
    return;
  auto& missing = missing_[seq - first_in_flight_];
  if (missing == 0)
    return;
  missing = all ? 0 : missing - 1;
  if (missing > 0)
    return;
  --in_flight_;
  while (!missing_.empty() && missing_.front() == 0) {
    missing_.pop_front();
    ++first_in_flight_;
  }
  if (sending_)
    publish(now_ns());
}

void fanout::subscribe_all() {
  const auto frame = subscribe(channel_);
  for (std::size_t slot = 0; slot < subs_.size(); ++slot) {
    if (auto* client = clients_.client(slot); client && client->welcomed()) {
      client->send_text(frame);
      ++subscribe_sent_;
    }
  }
}

void fanout::publish(std::int64_t sent_ns) {
  auto* client = clients_.client(publisher());
  if (client == nullptr || !client->welcomed()) {
    ++unsent_;
    return;
  }
  write_publish(frame_, channel_, probe{publisher(), sent_, sent_ns}, opts_.size);
  client->send_text(frame_);
  ++sent_;
  if (!open_loop()) {
    missing_.push_back(subscribed_ + 1); // its deliveries and its `published`
    ++in_flight_;
  }
}

void fanout::start_sending() {
  sending_ = true;
  const auto start_ns = now_ns();
  if (open_loop())
    return pacer_.start(
        opts_.rate, start_ns, [this] { return now_ns(); },
        [this](std::uint64_t, std::int64_t due_ns) { publish(due_ns); });
  for (std::uint64_t i = 0; i < opts_.window; ++i)
    publish(start_ns);
}

void fanout::stop_sending() {
  sending_ = false;
  pacer_.stop();
}

bool fanout::drained() const {
  return published_ + publish_errors_ >= sent_ && deliveries_ >= published_ * subscribed_;
}

boost::json::object fanout::subscribe_report() const {
  boost::json::object out;
  out["sent"] = subscribe_sent_;
  out["answered"] = subscribe_answers_;
  out["subscribers_subscribed"] = subscribed_;
  out["publisher_subscribed"] = subs_[publisher()].subscribed;
  out["errors"] = error_frames_;
  boost::json::object codes;
  for (const auto& [code, n] : error_codes_)
    codes[code] = n;
  out["error_codes"] = std::move(codes);
  return out;
}

boost::json::object fanout::results(const window_meter& meter) const {
  boost::json::object out;
  report_load(out, opts_);
  out["channel"] = channel_;
  out["subscribers"] = subs_.size() - 1;
  out["publications"] = sent_;
  out["unsent"] = unsent_; // due while the publisher was down
  out["published"] = published_;
  out["published_in_window"] = published_in_window_;
  out["publish_errors"] = publish_errors_;
  std::uint64_t expected = 0, losses = 0;
  for (std::size_t slot = 0; slot < publisher(); ++slot) {
    const auto& s = subs_[slot];
    if (!s.subscribed)
      continue;
    const auto due = top_offset_ > s.start ? top_offset_ - s.start : 0;
    expected += due;
    losses += due > s.received ? due - s.received : 0;
  }
  out["expected_deliveries"] = expected;
  out["deliveries"] = deliveries_;
  out["deliveries_in_window"] = deliveries_in_window_;
  out["publisher_received"] = publisher_received_;
  out["losses"] = losses;
  out["order_violations"] = order_violations_;
  clients_.report_errors(out, error_frames_, strays_);
  out["latency_us"] = latency_.summary(1000);
  out["measured"] = meter.finish(deliveries_in_window_);
  return out;
}

boost::json::object fanout::run() {
  boost::json::object out;
  out["connect"] =
      connect_all(io_, clients_, spread_over_urls(subs_.size(), opts_.urls.size()));
  io_.call([this] { subscribe_all(); });
  io_.wait_until([this] { return subscribe_answers_ >= subscribe_sent_; },
                 from_now(subscribe_timeout));
  out["subscribe"] = io_.call([this] { return subscribe_report(); });
  const bool publishing = io_.call([this] { return subs_[publisher()].subscribed; });
  out["publishing"] = publishing;
  pause(opts_.settle);

  window_meter meter(opts_.pids);
  if (publishing) {
    io_.call([this] { start_sending(); });
    pause(opts_.duration);
    io_.call([this] { stop_sending(); });
  }
  const double window = meter.elapsed_seconds();
  io_.wait_until([this] { return drained(); }, from_now(opts_.drain));
  auto results_json = io_.call([&] { return results(meter); });
  results_json["deliveries_per_s"] = rounded(
      static_cast<double>(results_json["deliveries_in_window"].as_uint64()) / window);
  results_json["publications_per_s"] = rounded(
      static_cast<double>(results_json["published_in_window"].as_uint64()) / window);
  out.insert(results_json.begin(), results_json.end());
  io_.call([this] { clients_.abort_all(); });
  return out;
}

} // namespace

boost::json::object run_fanout(const options& opts) {
  // One process holds every connection (no forking as idle does): more than
  // its descriptors allow is refused up front rather than failing midway.
  if (opts.connections + 1 + reserved_fds > raise_open_file_limit())
    throw std::runtime_error("fanout: --connections above this process's open-file "
                             "limit (RLIMIT_NOFILE); run several generators");
  return run_on_own_loop<fanout>(opts);
}

} // namespace bench
