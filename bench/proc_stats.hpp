// What the benchmark reads about processes: the node's memory and CPU from
// /proc (by PID), its own CPU from getrusage, and its open-file limit.
#pragma once

#include <cstdint>
#include <sys/types.h>
#include <vector>

namespace bench {

// VmRSS of `pid` in KiB; 0 when the process or the line is gone.
std::uint64_t rss_kib(pid_t pid);
// The sum over several processes (the nodes of a cluster).
std::uint64_t rss_kib(const std::vector<pid_t>& pids);

// CPU time in seconds, split as the kernel accounts it: user is the
// process's own code, system the kernel's work for it (mostly socket sends
// and receives).
struct cpu_time {
  double user = 0;
  double system = 0;
  double total() const { return user + system; }
};

// utime and stime of `pid`; zero when the process is gone.
cpu_time cpu_times(pid_t pid);
// The sum over several processes (the nodes of a cluster).
cpu_time cpu_times(const std::vector<pid_t>& pids);

// User + system CPU of this process and its reaped children, in seconds.
double own_cpu_seconds();

// Descriptors a generator process keeps besides its sockets (stdio, epoll,
// pipes).
constexpr std::uint64_t reserved_fds = 100;

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
std::uint64_t raise_open_file_limit();

} // namespace bench
