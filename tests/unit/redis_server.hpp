// A real redis-server for tests, on a free port of 127.0.0.1, with no
// persistence. stop() and start() again keep the port, so that tests can
// take Redis away under a running client and bring it back.
#pragma once

#include "src/redis/commands.hpp"
#include "src/redis/types.hpp"

#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace hubnode::test {

class redis_server {
public:
  static constexpr const char* binary = "/usr/bin/redis-server";

  redis_server() : port_(free_port()) { start(); }

  ~redis_server() { stop(); }

  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  std::uint16_t port() const { return port_; }

  bool running() const { return pid_ > 0; }

  redis_endpoint endpoint() const {
    redis_endpoint result;
    result.host = "127.0.0.1";
    result.port = port_;
    return result;
  }

  // Starts the server (if it is not running) and waits until it answers
  // PING, at most 5 s. False when it did not come up.
  bool start() {
    if (running())
      return true;
    auto port = std::to_string(port_);
    std::vector<std::string> args{binary,      "--port",      port,     "--bind",
                                  "127.0.0.1", "--save",      "",       "--appendonly",
                                  "no",        "--daemonize", "no",     "--dir",
                                  "/tmp",      "--loglevel",  "warning"};
    std::vector<char*> argv;
    for (auto& arg : args)
      argv.push_back(arg.data());
    argv.push_back(nullptr);
    auto pid = ::fork();
    if (pid < 0)
      return false;
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the test run
      auto null = ::open("/dev/null", O_RDWR);
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      ::execv(binary, argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    return await_ping();
  }

  // Kills the server at once (SIGKILL: no goodbye to its clients, as in a
  // crash) and reaps it.
  void stop() {
    if (!running())
      return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

private:
  // A port the kernel had free a moment ago.
  static std::uint16_t free_port() {
    auto fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t length = sizeof(addr);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  // Polls with a bound: the server gives no other sign of being ready.
  bool await_ping() {
    using namespace std::chrono_literals;
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1; // exited: the port is taken, or the binary is missing
        return false;
      }
      redis_connection conn;
      if (conn.connect(endpoint(), 200ms, 200ms).empty())
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::uint16_t port_;
  pid_t pid_ = -1;
};

} // namespace hubnode::test
