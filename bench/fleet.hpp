// The scenario's clients: one slot per user (user id = --user-base + slot),
// connected at a bounded number of handshakes in flight, spread over source
// addresses 127.0.0.2-127.0.0.250, their events passed on to the scenario
// and their failures counted by reason. Lives on the io_runner's thread.
#pragma once

#include "bench/io_runner.hpp"
#include "bench/options.hpp"
#include "bench/ws_client.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include <deque>
#include <map>
#include <memory>
#include <vector>

namespace bench {

class fleet final : private ws_client::listener {
public:
  // What a scenario hears about its clients, by slot.
  class handler {
  public:
    virtual void on_welcome(std::size_t /*slot*/, std::string_view /*welcome*/) {}
    virtual void on_text(std::size_t /*slot*/, std::string_view /*frame*/) {}
    // The connection ended (after close(), why is "closed"), or its
    // handshake failed; either way the slot has no open client now.
    virtual void on_end(std::size_t /*slot*/, std::string_view /*why*/) {}

  protected:
    ~handler() = default;
  };

  fleet(net::io_context& io, const options& opts, handler& events, std::size_t slots);

  std::size_t size() const { return clients_.size(); }
  std::uint64_t user(std::size_t slot) const { return user_base_ + slot; }
  // The client in `slot`, or nullptr before its first connect.
  ws_client* client(std::size_t slot) { return clients_[slot].get(); }

  // Connects these slots (slot, index of its --url), at most `concurrency`
  // handshakes in flight.
  void connect_queued(std::vector<std::pair<std::size_t, std::size_t>> slots);
  // Connects one slot now, outside the queue (a reconnect).
  void connect(std::size_t slot, std::size_t url_index);
  // Query parameters ("&name=value...") added to this slot's upgrade target
  // from its next connect on.
  void set_query(std::size_t slot, std::string query) {
    queries_[slot] = std::move(query);
  }
  // Starts the close handshake of the client in `slot`; from then on it no
  // longer counts as welcomed, so a count never includes a client on its
  // way out.
  void close(std::size_t slot);
  // Drops every connection at once and cancels every slot's timer; no
  // on_end follows.
  void abort_all();

  // Runs f() after `delay` on this slot's timer (which holds one wait at a
  // time: a new one replaces a pending one).
  template <class F>
  void after(std::size_t slot, clock::duration delay, F f) {
    auto& timer = timers_[slot];
    timer.expires_after(delay);
    timer.async_wait([f = std::move(f)](boost::system::error_code ec) {
      if (!ec)
        f();
    });
  }

  std::size_t welcomed() const { return welcomed_; }
  std::size_t pending() const { return in_flight_ + queue_.size(); }
  std::uint64_t failures() const { return failure_count_; }
  // {"reason": count, ...}
  boost::json::object failure_reasons() const;
  // Adds "connection_failures" and "failure_reasons" to a report.
  void report_failures(boost::json::object& out) const;
  // Adds those, the scenario's "error_frames" and "stray_frames" (frames it
  // did not expect), and "errors", the sum of the three.
  void report_errors(boost::json::object& out, std::uint64_t error_frames,
                     std::uint64_t strays) const;

private:
  void on_welcome(ws_client& client, std::string_view welcome) override;
  void on_text(ws_client& client, std::string_view frame) override;
  void on_end(ws_client& client, std::string_view why) override;
  void start_queued();
  void handshake_done(std::size_t slot);
  void uncount(std::size_t slot);

  net::io_context& io_;
  handler& events_;
  std::vector<tcp::endpoint> servers_;
  std::vector<std::string> paths_;
  std::uint64_t user_base_;
  std::size_t concurrency_;
  std::vector<std::shared_ptr<ws_client>> clients_;
  std::vector<net::steady_timer> timers_;
  std::vector<std::string> queries_;
  std::vector<bool> queued_start_; // this slot's handshake counts in in_flight_
  std::vector<bool> counted_;      // this slot's client counts in welcomed_
  std::deque<std::pair<std::size_t, std::size_t>> queue_;
  std::size_t in_flight_ = 0;
  std::size_t welcomed_ = 0;
  std::uint64_t failure_count_ = 0;
  std::map<std::string, std::uint64_t, std::less<>> failure_reasons_;
};

} // namespace bench
