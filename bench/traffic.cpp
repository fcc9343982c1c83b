// pairs, echo and cluster: users sending to a partner (pairs; on different
// nodes for cluster) or to themselves (echo). Closed loop keeps --window
// messages in flight per connection: a delivery lets its sender send the
// next. Open loop offers --rate messages/s on a fixed schedule whatever the
// node does, and measures latency from the scheduled send time, so a node
// that falls behind shows its queueing (no coordinated omission).
#include "bench/fleet.hpp"
#include "bench/frames.hpp"
#include "bench/histogram.hpp"
#include "bench/pacer.hpp"
#include "bench/phases.hpp"
#include "bench/rounded.hpp"
#include "bench/scenarios.hpp"
#include "bench/window_meter.hpp"

namespace bench {

namespace {

class traffic final : public fleet::handler {
public:
  traffic(io_runner& io, const options& opts);
  boost::json::object run();

private:
  struct peer {
    std::size_t target = 0;       // the slot this one sends to
    std::uint64_t next_seq = 0;   // sequence of its next message
    std::uint64_t expect_seq = 0; // sequence expected from its sender
  };

  bool echo() const { return opts_.scenario == "echo"; }
  bool open_loop() const { return opts_.rate > 0; }
  std::size_t url_of(std::size_t slot) const;
  std::int64_t now_ns() const;

  void on_text(std::size_t slot, std::string_view frame) override;
  void on_message(std::size_t slot, std::string_view frame);
  void start_sending();
  void send_from(std::size_t slot, std::int64_t sent_ns);
  boost::json::object results(const window_meter& meter) const;

  io_runner& io_;
  const options& opts_;
  std::vector<peer> peers_;
  fleet clients_;
  pacer pacer_;
  std::string frame_; // reused for every send
  clock::time_point epoch_ = clock::now();
  std::int64_t start_ns_ = 0;
  bool sending_ = false;
  // counters
  std::uint64_t sent_ = 0, unsent_ = 0, received_ = 0, received_in_window_ = 0;
  std::uint64_t acks_ = 0, acks_offline_ = 0, error_frames_ = 0;
  std::uint64_t order_violations_ = 0, strays_ = 0;
  histogram latency_;
};

std::size_t pairs_rounded(const options& opts) {
  return opts.scenario == "echo" ? opts.connections : opts.connections / 2 * 2;
}

traffic::traffic(io_runner& io, const options& opts)
    : io_(io), opts_(opts), peers_(pairs_rounded(opts)),
      clients_(io.context(), opts, *this, peers_.size()), pacer_(io.context()) {
  for (std::size_t slot = 0; slot < peers_.size(); ++slot)
    peers_[slot].target = echo() ? slot : slot ^ 1;
}

// A pair (2k, 2k+1) sits on urls k and k+1: with several nodes the partners
// are always on different nodes; with one, on the same.
std::size_t traffic::url_of(std::size_t slot) const {
  const auto urls = opts_.urls.size();
  return echo() ? slot % urls : (slot / 2 + slot % 2) % urls;
}

std::int64_t traffic::now_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - epoch_)
      .count();
}

void traffic::on_text(std::size_t slot, std::string_view frame) {
  if (is_type(frame, "message")) {
    on_message(slot, frame);
  } else if (is_type(frame, "ack")) {
    ++acks_;
    acks_offline_ += ack_offline(frame) ? 1 : 0;
  } else if (is_type(frame, "error")) {
    ++error_frames_;
  } else {
    ++strays_;
  }
}

void traffic::on_message(std::size_t slot, std::string_view frame) {
  const auto p = read_probe(frame);
  if (!p || p->sender >= peers_.size() || peers_[p->sender].target != slot) {
    ++strays_;
    return;
  }
  ++received_;
  received_in_window_ += sending_ ? 1 : 0;
  latency_.record(
      static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ns() - p->sent_ns)));
  auto& expect = peers_[slot].expect_seq;
  if (p->seq != expect)
    ++order_violations_;
  expect = std::max(expect, p->seq + 1);
  if (sending_ && !open_loop())
    send_from(p->sender, now_ns());
}

void traffic::send_from(std::size_t slot, std::int64_t sent_ns) {
  auto* client = clients_.client(slot);
  if (client == nullptr || !client->welcomed()) {
    ++unsent_;
    return;
  }
  auto& me = peers_[slot];
  write_send(frame_, clients_.user(me.target), probe{slot, me.next_seq++, sent_ns},
             opts_.size);
  client->send_text(frame_);
  ++sent_;
}

void traffic::start_sending() {
  sending_ = true;
  start_ns_ = now_ns();
  // Message j is due at start + j / rate, from slot j mod N: every
  // connection sends at rate / N, evenly spaced.
  if (open_loop())
    return pacer_.start(
        opts_.rate, start_ns_, [this] { return now_ns(); },
        [this](std::uint64_t j, std::int64_t due_ns) {
          send_from(j % peers_.size(), due_ns);
        });
  for (std::uint64_t round = 0; round < opts_.window; ++round) {
    for (std::size_t slot = 0; slot < peers_.size(); ++slot)
      send_from(slot, start_ns_);
  }
}

boost::json::object traffic::run() {
  boost::json::object out;
  slot_urls slots;
  for (std::size_t slot = 0; slot < peers_.size(); ++slot)
    slots.emplace_back(slot, url_of(slot));
  out["connect"] = connect_all(io_, clients_, slots);
  pause(opts_.settle);

  window_meter meter(opts_.pids);
  io_.call([this] { start_sending(); });
  pause(opts_.duration);
  io_.call([this] {
    sending_ = false;
    pacer_.stop();
  });
  const double window = meter.elapsed_seconds();
  // An ack is in flight as long as its message: in cluster mode it waits for
  // Redis's answer on the sender's node while the message reaches the other
  // node, and either may come first.
  io_.wait_until([this] { return received_ >= sent_ && acks_ + error_frames_ >= sent_; },
                 from_now(opts_.drain));
  auto results_json = io_.call([&] { return results(meter); });
  results_json["delivered_per_s"] = rounded(
      static_cast<double>(results_json["delivered_in_window"].as_uint64()) / window);
  out.insert(results_json.begin(), results_json.end());
  io_.call([this] { clients_.abort_all(); });
  return out;
}

boost::json::object traffic::results(const window_meter& meter) const {
  boost::json::object out;
  report_load(out, opts_);
  out["connections"] = peers_.size();
  out["sent"] = sent_;
  out["unsent"] = unsent_; // due while its connection was down
  out["delivered"] = received_;
  out["delivered_in_window"] = received_in_window_;
  out["losses"] = sent_ > received_ ? sent_ - received_ : 0;
  out["order_violations"] = order_violations_;
  out["acks"] = acks_;
  out["acks_offline"] = acks_offline_;
  clients_.report_errors(out, error_frames_, strays_);
  out["latency_us"] = latency_.summary(1000);
  out["measured"] = meter.finish(received_);
  return out;
}

} // namespace

boost::json::object run_traffic(const options& opts) {
  return run_on_own_loop<traffic>(opts);
}

} // namespace bench
