// presence_monitor over the protocol, for standalone nodes: more clients
// (users first + count onwards, outside the range) watch the users, at most
// presence.max-watched's default each, and ask the node about them with
// `presence` queries.
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
// presence.max-watched's default: a watcher client watches at most this many.
constexpr std::uint64_t users_per_watcher = 1000;

std::size_t watchers_for(std::uint64_t count) {
  return std::max<std::uint64_t>(1, (count + users_per_watcher - 1) / users_per_watcher);
}

slot_urls every_slot(std::size_t slots) {
  slot_urls result;
  for (std::size_t slot = 0; slot < slots; ++slot)
    result.emplace_back(slot, 0);
  return result;
}

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
        watcher_(io.context(), watcher_options(opts, first, count), *this,
                 watchers_for(count)) {
    if (connect_all(io_, watcher_, every_slot(watcher_.size()))["connected"]
            .as_uint64() != watcher_.size())
      throw std::runtime_error("the watcher clients could not connect");
    for_each_watcher([this](std::size_t slot, std::uint64_t from, std::uint64_t n) {
      send_requests("watch", slot, from, n);
    });
    // The presence actor takes watch and presence from one connection in
    // order: once these answers are here, every watch is in place.
    ask_presence();
  }

  std::uint64_t offline_events() override {
    return checked([this] { return offline_; });
  }

  std::uint64_t not_online() override { return ask_presence(); }

  const char* source() const override { return "watcher"; }

private:
  // f(slot, first user, users) for each watcher's share of the users.
  template <class F>
  void for_each_watcher(F f) {
    for (std::size_t slot = 0; slot < watcher_.size(); ++slot) {
      auto from = slot * users_per_watcher;
      f(slot, first_ + from, std::min(users_per_watcher, count_ - from));
    }
  }

  // A refused request would leave users unwatched and their flaps uncounted.
  template <class F>
  std::uint64_t checked(F f) {
    auto [value, error] = io_.call([&] { return std::make_pair(f(), error_); });
    if (!error.empty())
      throw std::runtime_error("the node refused a watcher request: " + error);
    return value;
  }

  // Sends one `type` request per 100 users of [first, first + count) from
  // the watcher in `slot`; returns how many.
  std::uint64_t send_requests(std::string_view type, std::size_t slot,
                              std::uint64_t first, std::uint64_t count) {
    std::uint64_t sent = 0;
    for (std::uint64_t at = 0; at < count; at += ids_per_request, ++sent) {
      if (sent > 0 && sent % burst == 0)
        std::this_thread::sleep_for(burst_pause);
      const auto frame =
          user_list_request(type, first + at, std::min(ids_per_request, count - at));
      io_.call([&] { watcher_.client(slot)->send_text(frame); });
    }
    return sent;
  }

  // Asks each watcher about its users; returns how many are offline.
  std::uint64_t ask_presence() {
    io_.call([this] { answers_ = offline_answers_ = 0; });
    std::uint64_t asked = 0;
    for_each_watcher([&](std::size_t slot, std::uint64_t from, std::uint64_t n) {
      asked += send_requests("presence", slot, from, n);
    });
    if (!io_.wait_until([&] { return answers_ >= asked || !error_.empty(); },
                        from_now(answer_timeout)))
      throw std::runtime_error("the node did not answer every presence query");
    return checked([this] { return offline_answers_; });
  }

  void on_text(std::size_t, std::string_view frame) override {
    if (is_type(frame, "presence_changed"))
      on_change(frame);
    else if (is_type(frame, "presence"))
      on_answer(frame);
    else if (is_type(frame, "error") && error_.empty())
      error_ = std::string{frame};
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
  std::string error_; // the first error frame, if any
};

} // namespace

std::unique_ptr<presence_monitor> start_watcher_monitor(io_runner& io,
                                                        const options& opts,
                                                        std::uint64_t first,
                                                        std::uint64_t count) {
  return std::make_unique<watcher_monitor>(io, opts, first, count);
}

} // namespace bench
