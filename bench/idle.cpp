// idle: N connections opened as fast as the node welcomes them and held:
// connect rate, the node's RSS per connection (VmRSS of --pid before and
// after), and a sample that must still answer a ping after the hold. A
// process may hold only RLIMIT_NOFILE sockets, so a larger N is split over
// forked processes that connect at the same time; the parent measures the
// node between their two phases and sums their reports.
#include "bench/fleet.hpp"
#include "bench/frames.hpp"
#include "bench/phases.hpp"
#include "bench/proc_stats.hpp"
#include "bench/rounded.hpp"
#include "bench/scenarios.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdio>
#include <functional>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {

namespace {

namespace json = boost::json;

// How long sampled connections have to answer their ping.
constexpr auto sample_timeout = std::chrono::seconds(10);

struct share {
  std::uint64_t first;
  std::uint64_t count;
};

// One process's connections: connect them, then answer pings on a sample.
class idle_share final : public fleet::handler {
public:
  idle_share(io_runner& io, const options& opts, share part)
      : io_(io), opts_(with_base(opts, part.first)), part_(part),
        clients_(io.context(), opts_, *this, part.count) {}

  json::object connect() {
    auto out =
        connect_all(io_, clients_, spread_over_urls(part_.count, opts_.urls.size()));
    out["failure_reasons"] = io_.call([this] { return clients_.failure_reasons(); });
    return out;
  }

  // Pings `size` connections spread over the share; counts the pongs.
  json::object sample(std::uint64_t size) {
    size = std::min(size, part_.count);
    io_.call([&] {
      for (std::uint64_t i = 0; i < size; ++i) {
        if (auto* client = clients_.client(i * part_.count / size))
          client->send_text(ping("sample"));
      }
    });
    io_.wait_until([&] { return pongs_ >= size; }, from_now(sample_timeout));
    json::object out;
    out["size"] = size;
    out["answered"] = io_.call([this] { return pongs_; });
    io_.call([this] { clients_.abort_all(); });
    return out;
  }

private:
  static options with_base(options opts, std::uint64_t first) {
    opts.user_base += first; // distinct users across processes
    return opts;
  }

  void on_text(std::size_t, std::string_view frame) override {
    pongs_ += is_type(frame, "pong") ? 1 : 0;
  }

  io_runner& io_;
  options opts_;
  share part_;
  fleet clients_;
  std::uint64_t pongs_ = 0;
};

// Runs a share in this process: connect, `between` (hold, measure), sample.
std::pair<json::object, json::object>
run_share(const options& opts, share part, std::uint64_t sample_size,
          const std::function<void(const json::object&)>& between) {
  io_runner io;
  idle_share worker(io, opts, part);
  auto connected = worker.connect();
  between(connected);
  auto sampled = worker.sample(sample_size);
  io.stop();
  return {connected, sampled};
}

void write_line(int fd, const json::object& obj) {
  const auto line = json::serialize(obj) + "\n";
  (void)!::write(fd, line.data(), line.size());
}

json::object read_line(FILE* in) {
  char* line = nullptr;
  std::size_t cap = 0;
  json::object out;
  if (getline(&line, &cap, in) > 0) {
    boost::system::error_code ec;
    auto value = json::parse(line, ec);
    if (!ec && value.is_object())
      out = value.as_object();
  }
  std::free(line);
  return out;
}

struct child {
  pid_t pid;
  FILE* from; // its reports
  int to;     // the go signal
};

// The child's side: report the connect phase, wait for the go, report the sample.
[[noreturn]] void child_main(const options& opts, share part, std::uint64_t sample_size,
                             int report_fd, int go_fd) {
  alarm(static_cast<unsigned>(opts.timeout.count()) + 1); // alarms are not inherited
  auto [connected, sampled] =
      run_share(opts, part, sample_size, [&](const json::object& c) {
        write_line(report_fd, c);
        char go = 0;
        (void)!::read(go_fd, &go, 1);
      });
  write_line(report_fd, sampled);
  ::_exit(0);
}

child spawn(const options& opts, share part, std::uint64_t sample_size) {
  int up[2], down[2];
  if (pipe(up) != 0 || pipe(down) != 0)
    throw std::runtime_error("pipe failed");
  const pid_t pid = fork();
  if (pid < 0)
    throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(up[0]);
    ::close(down[1]);
    child_main(opts, part, sample_size, up[1], down[0]);
  }
  ::close(up[1]);
  ::close(down[0]);
  return {pid, fdopen(up[0], "r"), down[1]};
}

void add(json::object& sum, const json::object& part, json::string_view key) {
  const auto value = part.if_contains(key);
  sum[key] = (sum.contains(key) ? sum[key].to_number<std::uint64_t>() : 0) +
             (value ? value->to_number<std::uint64_t>() : 0);
}

// The processes connected at the same time: counts add up, the phase took
// as long as the slowest.
json::object merge_connects(const std::vector<json::object>& parts) {
  json::object sum;
  json::object reasons;
  double seconds = 0;
  for (const auto& part : parts) {
    add(sum, part, "connected");
    add(sum, part, "failed");
    if (auto* s = part.if_contains("seconds"))
      seconds = std::max(seconds, s->to_number<double>());
    if (auto* r = part.if_contains("failure_reasons"); r && r->is_object()) {
      for (const auto& reason : r->as_object())
        add(reasons, r->as_object(), reason.key());
    }
  }
  sum["seconds"] = seconds;
  sum["per_s"] =
      seconds > 0 ? rounded(sum["connected"].to_number<double>() / seconds) : 0.0;
  sum["failure_reasons"] = reasons;
  return sum;
}

json::object merge_samples(const std::vector<json::object>& parts) {
  json::object sum;
  for (const auto& part : parts) {
    add(sum, part, "size");
    add(sum, part, "answered");
  }
  return sum;
}

std::pair<json::object, json::object>
run_in_children(const options& opts, std::uint64_t processes,
                const std::function<void()>& between) {
  const auto per = (opts.connections + processes - 1) / processes;
  std::vector<child> children;
  for (std::uint64_t first = 0; first < opts.connections; first += per) {
    const auto count = std::min(per, opts.connections - first);
    children.push_back(
        spawn(opts, {first, count},
              (opts.sample * count + opts.connections - 1) / opts.connections));
  }
  std::vector<json::object> connects, samples;
  for (auto& c : children)
    connects.push_back(read_line(c.from));
  between();
  for (auto& c : children) {
    (void)!::write(c.to, "g", 1);
    samples.push_back(read_line(c.from));
    fclose(c.from);
    ::close(c.to);
  }
  for (auto& c : children)
    waitpid(c.pid, nullptr, 0);
  return {merge_connects(connects), merge_samples(samples)};
}

} // namespace

json::object run_idle(const options& opts) {
  const auto limit = raise_open_file_limit();
  const auto per_process = opts.per_process
                               ? opts.per_process
                               : (limit > reserved_fds ? limit - reserved_fds : 1);
  const auto processes = (opts.connections + per_process - 1) / per_process;
  const auto rss_before = rss_kib(opts.pids);
  std::uint64_t rss_after = 0;
  const auto hold_and_measure = [&] {
    pause(opts.hold);
    rss_after = rss_kib(opts.pids);
  };
  auto [connected, sampled] =
      processes == 1 ? run_share(opts, {0, opts.connections}, opts.sample,
                                 [&](const json::object&) { hold_and_measure(); })
                     : run_in_children(opts, processes, hold_and_measure);

  json::object out;
  out["connections"] = opts.connections;
  out["processes"] = processes;
  out["open_file_limit"] = limit;
  const auto open = connected["connected"].to_number<std::uint64_t>();
  if (!opts.pids.empty()) {
    out["node_rss_kib_before"] = rss_before;
    out["node_rss_kib_after"] = rss_after;
    if (open > 0)
      out["node_rss_kib_per_connection"] = rounded(
          (static_cast<double>(rss_after) - static_cast<double>(rss_before)) / open, 2);
  }
  out["errors"] = connected["failed"].to_number<std::uint64_t>() +
                  sampled["size"].to_number<std::uint64_t>() -
                  sampled["answered"].to_number<std::uint64_t>();
  out["connect"] = std::move(connected);
  out["sample"] = std::move(sampled);
  return out;
}

} // namespace bench
