// presence_monitor over Redis: a thread reads P`presence` on a subscribed
// hiredis connection; a second connection asks P`online` with SMISMEMBER.
#include "bench/presence_monitor.hpp"
#include "bench/redis_client.hpp"

#include <boost/json/parse.hpp>

#include <atomic>
#include <charconv>
#include <poll.h>
#include <string>
#include <thread>

namespace bench {

namespace {

// How often the reader thread looks at its stop flag.
constexpr int poll_ms = 100;
// Ids per SMISMEMBER: one reply stays small.
constexpr std::uint64_t batch = 500;

class redis_monitor final : public presence_monitor {
public:
  redis_monitor(const options& opts, std::uint64_t first, std::uint64_t count)
      : online_key_(opts.key_prefix + "online"), first_(first), count_(count),
        sub_(redis_connect(opts)), cmd_(redis_connect(opts)) {
    // SUBSCRIBE's own reply confirms the subscription: events flow from here.
    redis_command(sub_.get(), {"SUBSCRIBE", opts.key_prefix + "presence"});
    reader_ = std::thread([this] { read_events(); });
  }

  ~redis_monitor() override {
    stop_ = true;
    reader_.join();
  }

  std::uint64_t offline_events() override { return offline_; }
  const char* source() const override { return "redis"; }

  std::uint64_t not_online() override {
    std::uint64_t missing = 0;
    for (std::uint64_t at = 0; at < count_; at += batch) {
      std::vector<std::string> args{"SMISMEMBER", online_key_};
      for (std::uint64_t i = at; i < std::min(count_, at + batch); ++i)
        args.push_back(std::to_string(first_ + i));
      const auto r = redis_command(cmd_.get(), args);
      for (std::size_t i = 0; i < r->elements; ++i)
        missing += r->element[i]->integer == 0 ? 1 : 0;
    }
    return missing;
  }

private:
  // Bounded by stop_: the socket is polled, never read while empty.
  void read_events() {
    pollfd fd{sub_->fd, POLLIN, 0};
    while (!stop_) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(sub_.get(), &raw) != REDIS_OK)
        return;
      if (raw != nullptr) {
        on_reply(redis_reply(static_cast<redisReply*>(raw)));
        continue;
      }
      if (poll(&fd, 1, poll_ms) > 0 && redisBufferRead(sub_.get()) != REDIS_OK)
        return;
    }
  }

  // ["message", channel, {"userId":"ID","online":BOOL,...}]
  void on_reply(redis_reply r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
      return;
    boost::system::error_code ec;
    const auto event =
        boost::json::parse(std::string_view(r->element[2]->str, r->element[2]->len), ec);
    if (ec || !event.is_object())
      return;
    const auto* user = event.as_object().if_contains("userId");
    const auto* online = event.as_object().if_contains("online");
    if (!user || !user->is_string() || !online || !online->is_bool() || online->as_bool())
      return;
    const auto& text = user->as_string();
    std::uint64_t id = 0;
    const auto parsed = std::from_chars(text.data(), text.data() + text.size(), id);
    if (parsed.ec == std::errc{} && id >= first_ && id < first_ + count_)
      ++offline_;
  }

  std::string online_key_;
  std::uint64_t first_, count_;
  redis_context sub_, cmd_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> offline_{0};
  std::thread reader_;
};

} // namespace

std::unique_ptr<presence_monitor>
start_redis_monitor(const options& opts, std::uint64_t first, std::uint64_t count) {
  return std::make_unique<redis_monitor>(opts, first, count);
}

} // namespace bench
