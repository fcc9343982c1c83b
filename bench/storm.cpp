// storm: every client dropped at once, as when a node restarts under its
// users, then each reconnecting after a random delay of up to --jitter-ms,
// and on failure again with exponential backoff (up to --retries times).
// Reports how long until all are welcomed again and the presence flaps the
// storm caused: users that stay away longer than the grace period go
// offline, the others must not.
#include "bench/histogram.hpp"
#include "bench/presence_scenario.hpp"
#include "bench/rounded.hpp"
#include "bench/scenarios.hpp"

#include <random>

namespace bench {

namespace {

using std::chrono::milliseconds;

class storm final : public presence_scenario {
public:
  // The longest backoff between attempts, however many have failed.
  static constexpr milliseconds max_backoff{2000};

  storm(io_runner& io, const options& opts)
      : presence_scenario(io, opts), attempts_(opts.connections, 0) {}

private:
  void disturb(boost::json::object& out) override;
  void on_welcome(std::size_t slot, std::string_view welcome) override;
  void on_end(std::size_t slot, std::string_view why) override;
  void start_storm();
  // Up to jitter_ms * 2^attempt, at most max_backoff: spreads the retries.
  clock::duration backoff(std::uint64_t attempt);

  std::vector<std::uint64_t> attempts_;
  // on the loop's thread
  bool storming_ = false;
  clock::time_point dropped_at_{};
  clock::time_point last_welcome_{};
  std::mt19937_64 random_{std::random_device{}()};
  histogram back_after_;
};

clock::duration storm::backoff(std::uint64_t attempt) {
  const auto cap =
      std::min<std::uint64_t>(static_cast<std::uint64_t>(max_backoff.count()),
                              opts_.jitter_ms << std::min<std::uint64_t>(attempt, 20));
  return milliseconds(std::uniform_int_distribution<std::uint64_t>(0, cap)(random_));
}

void storm::on_welcome(std::size_t, std::string_view) {
  if (!storming_)
    return;
  last_welcome_ = clock::now();
  back_after_.record(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(last_welcome_ - dropped_at_)
          .count()));
}

void storm::on_end(std::size_t slot, std::string_view) {
  if (!storming_)
    return;
  if (++attempts_[slot] > opts_.retries) {
    ++given_up_;
    return;
  }
  clients_.after(slot, backoff(attempts_[slot]),
                 [this, slot] { clients_.connect(slot, slot % opts_.urls.size()); });
}

void storm::start_storm() {
  storming_ = true;
  dropped_at_ = clock::now();
  clients_.abort_all();
  for (std::size_t slot = 0; slot < attempts_.size(); ++slot)
    clients_.after(slot, backoff(0),
                   [this, slot] { clients_.connect(slot, slot % opts_.urls.size()); });
}

void storm::disturb(boost::json::object& out) {
  const auto n = attempts_.size();
  io_.call([this] { start_storm(); });
  wait_until_back();
  io_.call([&] {
    storming_ = false;
    out["clients"] = n;
    out["all_welcomed"] = clients_.welcomed() == n;
    out["welcomed"] = clients_.welcomed();
    out["seconds_to_all_welcomed"] =
        rounded(std::chrono::duration<double>(last_welcome_ - dropped_at_).count(), 3);
    out["welcomed_after_us"] = back_after_.summary(1000);
    out["given_up"] = given_up_;
  });
}

} // namespace

boost::json::object run_storm(const options& opts) {
  return run_with_monitor<storm>(opts);
}

} // namespace bench
