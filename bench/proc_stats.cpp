#include "bench/proc_stats.hpp"

#include <fstream>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <unistd.h>

namespace bench {

std::uint64_t rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoull(line.substr(6));
  }
  return 0;
}

std::uint64_t rss_kib(const std::vector<pid_t>& pids) {
  std::uint64_t sum = 0;
  for (auto pid : pids)
    sum += rss_kib(pid);
  return sum;
}

cpu_time cpu_times(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)),
                   std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: the fields
  // are counted from the last ')'. utime and stime are fields 14 and 15.
  const auto close = text.rfind(')');
  if (close == std::string::npos)
    return {};
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field)
    fields >> skip;
  unsigned long long utime = 0, stime = 0;
  fields >> utime >> stime;
  const auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {static_cast<double>(utime) / ticks, static_cast<double>(stime) / ticks};
}

cpu_time cpu_times(const std::vector<pid_t>& pids) {
  cpu_time sum;
  for (auto pid : pids) {
    const auto one = cpu_times(pid);
    sum.user += one.user;
    sum.system += one.system;
  }
  return sum;
}

namespace {

double seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

double cpu_of(int who) {
  rusage usage{};
  getrusage(who, &usage);
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

} // namespace

double own_cpu_seconds() {
  return cpu_of(RUSAGE_SELF) + cpu_of(RUSAGE_CHILDREN);
}

std::uint64_t raise_open_file_limit() {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

} // namespace bench
