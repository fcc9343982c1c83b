// What the benchmark reads about processes: the node's memory and CPU from
// /proc (by PID), its own CPU from getrusage, and its open-file limit.
#pragma once

#include <cstdint>
#include <sys/types.h>
#include <vector>

namespace bench {

// VmRSS of `pid` in KiB; 0 when the process or the line is gone.
std::uint64_t rss_kib(pid_t pid);

// utime + stime of `pid` in seconds; 0 when the process is gone.
double cpu_seconds(pid_t pid);
// The sum over several processes (the nodes of a cluster).
double cpu_seconds(const std::vector<pid_t>& pids);

// User + system CPU of this process and its reaped children, in seconds.
double own_cpu_seconds();

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
std::uint64_t raise_open_file_limit();

} // namespace bench
