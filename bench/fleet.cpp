#include "bench/fleet.hpp"

namespace bench {

namespace {

// 249 source addresses, so that tens of thousands of connections to one
// port never run out of ephemeral ports (every 127/8 address is local).
net::ip::address source_for(std::size_t slot, const tcp::endpoint& server) {
  if (!server.address().is_v4())
    return server.address(); // ::1 is the only IPv6 loopback address
  return net::ip::address_v4(static_cast<net::ip::address_v4::uint_type>(
      (127u << 24) | (2u + static_cast<unsigned>(slot % 249))));
}

} // namespace

fleet::fleet(net::io_context& io, const options& opts, handler& events, std::size_t slots)
    : io_(io), events_(events), user_base_(opts.user_base),
      concurrency_(opts.concurrency), clients_(slots), queries_(slots),
      queued_start_(slots, false), counted_(slots, false) {
  timers_.reserve(slots);
  for (std::size_t slot = 0; slot < slots; ++slot)
    timers_.emplace_back(io);
  for (const auto& url : opts.urls) {
    servers_.emplace_back(net::ip::make_address(url.host), url.port);
    paths_.push_back(url.path + "?userId=");
  }
}

void fleet::connect_queued(std::vector<std::pair<std::size_t, std::size_t>> slots) {
  queue_.insert(queue_.end(), slots.begin(), slots.end());
  start_queued();
}

void fleet::start_queued() {
  while (in_flight_ < concurrency_ && !queue_.empty()) {
    const auto [slot, url] = queue_.front();
    queue_.pop_front();
    ++in_flight_;
    queued_start_[slot] = true;
    connect(slot, url);
  }
}

void fleet::connect(std::size_t slot, std::size_t url_index) {
  auto& client = clients_[slot];
  uncount(slot);
  if (client)
    client->abort();
  const auto& server = servers_[url_index % servers_.size()];
  client =
      std::make_shared<ws_client>(io_, static_cast<ws_client::listener&>(*this), slot);
  client->connect(server, source_for(slot, server),
                  paths_[url_index % paths_.size()] + std::to_string(user(slot)) +
                      queries_[slot]);
}

void fleet::close(std::size_t slot) {
  uncount(slot);
  if (auto& client = clients_[slot])
    client->close();
}

void fleet::abort_all() {
  for (auto& client : clients_) {
    if (client)
      client->abort();
  }
  for (auto& timer : timers_)
    timer.cancel();
  queue_.clear();
  in_flight_ = 0;
  welcomed_ = 0;
  std::fill(queued_start_.begin(), queued_start_.end(), false);
  std::fill(counted_.begin(), counted_.end(), false);
}

void fleet::uncount(std::size_t slot) {
  if (counted_[slot]) {
    counted_[slot] = false;
    --welcomed_;
  }
}

void fleet::handshake_done(std::size_t slot) {
  if (queued_start_[slot]) {
    queued_start_[slot] = false;
    --in_flight_;
    start_queued();
  }
}

boost::json::object fleet::failure_reasons() const {
  boost::json::object out;
  for (const auto& [why, n] : failure_reasons_)
    out[why] = n;
  return out;
}

void fleet::report_failures(boost::json::object& out) const {
  out["connection_failures"] = failure_count_;
  out["failure_reasons"] = failure_reasons();
}

void fleet::report_errors(boost::json::object& out, std::uint64_t error_frames,
                          std::uint64_t strays) const {
  out["error_frames"] = error_frames;
  out["stray_frames"] = strays;
  report_failures(out);
  out["errors"] = error_frames + strays + failure_count_;
}

void fleet::on_welcome(ws_client& client, std::string_view welcome) {
  const auto slot = client.slot();
  counted_[slot] = true;
  ++welcomed_;
  handshake_done(slot);
  events_.on_welcome(slot, welcome);
}

void fleet::on_text(ws_client& client, std::string_view frame) {
  events_.on_text(client.slot(), frame);
}

void fleet::on_end(ws_client& client, std::string_view why) {
  const auto slot = client.slot();
  uncount(slot);
  if (why != "closed") {
    ++failure_count_;
    ++failure_reasons_[std::string(why)];
  }
  handshake_done(slot);
  events_.on_end(slot, why);
}

} // namespace bench
