// presence_monitor over the protocol, for standalone nodes: one more client
// (user first + count, outside the range) watches the users and asks the
// node about them with `presence` queries.
#include "bench/fleet.hpp"
#include "bench/frames.hpp"
#include "bench/phases.hpp"
#include "bench/presence_monitor.hpp"

#include <boost/json/parse.hpp>

#include <stdexcept>

namespace bench {

namespace {

namespace json = boost::json;

// SPEC 3: at most 100 ids per watch or presence request.
constexpr std::uint64_t ids_per_request = 100;
// The watcher's frames stay under hub.rate-limit's default (100/s, burst 200):
// at most this many back to back, then a pause.
constexpr std::uint64_t burst = 50;
constexpr auto burst_pause = std::chrono::milliseconds(600);
constexpr auto answer_timeout = std::chrono::seconds(10);

options watcher_options(const options& opts, std::uint64_t first, std::uint64_t count) {
  options own = opts;
  own.user_base = first + count;
  return own;
}

class watcher_monitor final : public presence_monitor, private fleet::handler {
public:
  watcher_monitor(io_runner& io, const options& opts, std::uint64_t first,
                  std::uint64_t count)
      : io_(io), first_(first), count_(count),
        watcher_(io.context(), watcher_options(opts, first, count), *this, 1) {
    if (connect_all(io_, watcher_, {{0, 0}})["connected"].as_uint64() != 1)
      throw std::runtime_error("the watcher client could not connect");
    send_requests("watch");
    // The presence actor takes watch and presence from one connection in
    // order: once this answer is here, every watch is in place.
    ask_presence(first_, 1);
  }

  std::uint64_t offline_events() override {
    return io_.call([this] { return offline_; });
  }

  std::uint64_t not_online() override { return ask_presence(first_, count_); }

  const char* source() const override { return "watcher"; }

private:
  // Sends one `type` request per 100 users of [first, first + count); returns
  // how many.
  std::uint64_t send_requests(std::string_view type, std::uint64_t first,
                              std::uint64_t count) {
    std::uint64_t sent = 0;
    for (std::uint64_t at = 0; at < count; at += ids_per_request, ++sent) {
      if (sent > 0 && sent % burst == 0)
        std::this_thread::sleep_for(burst_pause);
      const auto frame =
          user_list_request(type, first + at, std::min(ids_per_request, count - at));
      io_.call([&] { watcher_.client(0)->send_text(frame); });
    }
    return sent;
  }

  void send_requests(std::string_view type) { send_requests(type, first_, count_); }

  // Asks about users [first, first + count); returns how many are offline.
  std::uint64_t ask_presence(std::uint64_t first, std::uint64_t count) {
    io_.call([this] { answers_ = offline_answers_ = 0; });
    const auto asked = send_requests("presence", first, count);
    if (!io_.wait_until([&] { return answers_ >= asked; }, from_now(answer_timeout)))
      throw std::runtime_error("the node did not answer every presence query");
    return io_.call([this] { return offline_answers_; });
  }

  void on_text(std::size_t, std::string_view frame) override {
    if (is_type(frame, "presence_changed"))
      on_change(frame);
    else if (is_type(frame, "presence"))
      on_answer(frame);
  }

  void on_change(std::string_view frame) {
    boost::system::error_code ec;
    const auto v = json::parse(frame, ec);
    if (ec || !v.is_object())
      return;
    const auto* online = v.as_object().if_contains("online");
    if (online && online->is_bool() && !online->as_bool())
      ++offline_;
  }

  void on_answer(std::string_view frame) {
    boost::system::error_code ec;
    const auto v = json::parse(frame, ec);
    ++answers_;
    const auto* users =
        ec || !v.is_object() ? nullptr : v.as_object().if_contains("users");
    if (!users || !users->is_object())
      return;
    for (const auto& entry : users->as_object())
      offline_answers_ += entry.value().is_bool() && !entry.value().as_bool() ? 1 : 0;
  }

  io_runner& io_;
  std::uint64_t first_, count_;
  fleet watcher_;
  // on the loop's thread
  std::uint64_t offline_ = 0;
  std::uint64_t answers_ = 0;
  std::uint64_t offline_answers_ = 0;
};

} // namespace

std::unique_ptr<presence_monitor> start_watcher_monitor(io_runner& io,
                                                        const options& opts,
                                                        std::uint64_t first,
                                                        std::uint64_t count) {
  return std::make_unique<watcher_monitor>(io, opts, first, count);
}

} // namespace bench
