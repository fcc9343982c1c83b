// churn: every user closes its connection and reconnects within the grace
// period, cycle after cycle (with several --url, each time to the next
// node). A user that reconnects in time never goes offline (SPEC 4
// guarantee 3), so every offline event for these users is a flap; at the
// end all of them must be online.
#include "bench/histogram.hpp"
#include "bench/phases.hpp"
#include "bench/presence_scenario.hpp"
#include "bench/rounded.hpp"
#include "bench/scenarios.hpp"

namespace bench {

namespace {

using std::chrono::milliseconds;

// Between failed reconnects of one user, so that a refusing node is not
// hammered in a tight loop.
constexpr auto retry_pause = milliseconds(20);

class churn final : public presence_scenario {
public:
  churn(io_runner& io, const options& opts)
      : presence_scenario(io, opts), users_(opts.connections) {}

private:
  struct user {
    std::uint64_t cycles = 0;
    std::uint64_t failures_in_a_row = 0;
    clock::time_point closed_at{};
  };

  void disturb(boost::json::object& out) override;
  void on_welcome(std::size_t slot, std::string_view welcome) override;
  void on_end(std::size_t slot, std::string_view why) override;
  void reconnect(std::size_t slot, clock::duration delay);

  std::vector<user> users_;
  // on the loop's thread
  bool cycling_ = false;
  std::uint64_t cycles_ = 0;
  histogram reconnect_;
};

void churn::on_welcome(std::size_t slot, std::string_view) {
  auto& u = users_[slot];
  u.failures_in_a_row = 0;
  if (u.closed_at != clock::time_point{}) {
    reconnect_.record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - u.closed_at)
            .count()));
    u.closed_at = {};
    ++u.cycles;
    ++cycles_;
  }
  if (cycling_ && u.cycles < opts_.cycles) {
    clients_.after(slot, milliseconds(opts_.hold_ms), [this, slot] {
      if (cycling_)
        clients_.close(slot);
    });
  }
}

// Whatever ended the connection, the user comes back: cycling or not, the
// run ends with every user connected.
void churn::on_end(std::size_t slot, std::string_view why) {
  auto& u = users_[slot];
  if (why == "closed") {
    u.closed_at = clock::now();
    return reconnect(slot, milliseconds(opts_.reconnect_delay_ms));
  }
  if (++u.failures_in_a_row > opts_.retries) {
    ++given_up_;
    return;
  }
  reconnect(slot, retry_pause);
}

void churn::reconnect(std::size_t slot, clock::duration delay) {
  const auto url = (slot + users_[slot].cycles + 1) % opts_.urls.size();
  clients_.after(slot, delay, [this, slot, url] { clients_.connect(slot, url); });
}

void churn::disturb(boost::json::object& out) {
  const auto start = clock::now();
  io_.call([this] {
    cycling_ = true;
    for (std::size_t slot = 0; slot < users_.size(); ++slot) {
      if (auto* client = clients_.client(slot); client && client->welcomed())
        on_welcome(slot, {}); // starts this user's first cycle
    }
  });
  pause(opts_.duration);
  io_.call([this] { cycling_ = false; });
  const double window = std::chrono::duration<double>(clock::now() - start).count();
  wait_until_back();
  io_.call([&] {
    out["users"] = users_.size();
    out["cycles"] = cycles_;
    out["cycles_per_s"] = rounded(static_cast<double>(cycles_) / window);
    out["reconnect_us"] = reconnect_.summary(1000);
    out["connected_at_end"] = clients_.welcomed();
    out["given_up"] = given_up_;
  });
}

} // namespace

boost::json::object run_churn(const options& opts) {
  return run_with_monitor<churn>(opts);
}

} // namespace bench
