// The io scheduler on real threads: actors run on the io pool, messages
// between them stay on it, CAF's clock still fires, and the system ends with
// its last actor.
#include "src/base/log.hpp"

#include "src/net/io_pool.hpp"
#include "src/net/io_scheduler.hpp"

#include <boost/asio/post.hpp>
#include <doctest/doctest.h>
#include <future>
#include <thread>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/scoped_actor.hpp"

namespace {

using namespace hubnode;
using namespace std::chrono_literals;

using where_atom = caf::atom_constant<caf::atom("where")>;
using relay_atom = caf::atom_constant<caf::atom("relay")>;
using later_atom = caf::atom_constant<caf::atom("later")>;
using silent_atom = caf::atom_constant<caf::atom("silent")>;

struct quiet_config : caf::actor_system_config {
  explicit quiet_config(caf::atom_value policy = caf::atom("io")) {
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
    set("scheduler.policy", policy);
  }
};

// An actor system on an io_pool of `threads` threads, as main() builds it.
struct io_system {
  io_pool pool;
  quiet_config cfg;
  caf::actor_system sys;

  explicit io_system(std::size_t threads = 1, caf::atom_value policy = caf::atom("io"))
      : pool(threads), cfg(policy), sys(installed(cfg, pool)) {}

  static caf::actor_system_config& installed(quiet_config& cfg, io_pool& pool) {
    io_scheduler::install(cfg, pool);
    return cfg;
  }
};

// Thread ids travel between actors as their hash (std::thread::id is not a
// message type).
std::uint64_t this_thread() {
  return std::hash<std::thread::id>{}(std::this_thread::get_id());
}

std::uint64_t pool_thread(io_pool& pool) {
  std::promise<std::uint64_t> id;
  boost::asio::post(pool.context(), [&id] { id.set_value(this_thread()); });
  return id.get_future().get();
}

// Answers with the thread it runs on; relays a count down through a peer
// and answers with the threads the whole chain ran on.
caf::behavior reporter(caf::event_based_actor* self) {
  return {
      [](where_atom) { return this_thread(); },
      [self](relay_atom, int hops, caf::actor peer) -> caf::result<bool> {
        auto here = this_thread();
        if (hops == 0)
          return true;
        auto rp = self->make_response_promise<bool>();
        self->request(peer, caf::infinite, relay_atom::value, hops - 1,
                      caf::actor_cast<caf::actor>(self))
            .then([rp, here](bool same) mutable {
              rp.deliver(same && here == this_thread());
            });
        return rp;
      },
      [self](later_atom, caf::actor reply_to) {
        self->delayed_send(reply_to, 20ms, later_atom::value);
      },
      [](silent_atom) -> caf::result<bool> { return caf::delegated<bool>{}; },
  };
}

} // namespace

TEST_CASE("io scheduler: actors run on the io pool's thread") {
  io_system io_sys;
  auto& sys = io_sys.sys;
  REQUIRE(io_scheduler::runs(sys));
  auto io = pool_thread(io_sys.pool);
  CHECK(io != this_thread());
  auto a = sys.spawn(reporter);
  caf::scoped_actor self{sys};
  self->request(a, 5s, where_atom::value)
      .receive([&](std::uint64_t ran_on) { CHECK(ran_on == io); },
               [&](caf::error& err) { FAIL(sys.render(err)); });
  self->send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_CASE("io scheduler: a chain of requests between actors stays on that thread") {
  io_system io_sys;
  auto& sys = io_sys.sys;
  auto a = sys.spawn(reporter);
  auto b = sys.spawn(reporter);
  caf::scoped_actor self{sys};
  self->request(a, 5s, relay_atom::value, 1000, b)
      .receive([](bool same_thread) { CHECK(same_thread); },
               [&](caf::error& err) { FAIL(sys.render(err)); });
  self->send_exit(a, caf::exit_reason::user_shutdown);
  self->send_exit(b, caf::exit_reason::user_shutdown);
}

TEST_CASE("io scheduler: delayed messages and request timeouts still fire") {
  io_system io_sys;
  auto& sys = io_sys.sys;
  auto a = sys.spawn(reporter);
  caf::scoped_actor self{sys};
  self->send(a, later_atom::value, caf::actor{self});
  self->receive([](later_atom) {}, caf::after(5s) >> [] { FAIL("no delayed message"); });
  self->request(a, 50ms, silent_atom::value)
      .receive([](bool) { FAIL("an answer to a request never answered"); },
               [](caf::error& err) { CHECK(err == caf::sec::request_timeout); });
  self->send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_CASE("io scheduler: several io threads share the actors") {
  io_system io_sys{3};
  auto& sys = io_sys.sys;
  std::vector<caf::actor> actors;
  for (int i = 0; i < 8; ++i)
    actors.push_back(sys.spawn(reporter));
  caf::scoped_actor self{sys};
  for (auto& a : actors)
    self->request(a, 5s, relay_atom::value, 200, actors.front())
        .receive([](bool) {}, [&](caf::error& err) { FAIL(sys.render(err)); });
  for (auto& a : actors)
    self->send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_CASE("io scheduler: another scheduler.policy keeps CAF's scheduler") {
  io_system io_sys{1, caf::atom("stealing")};
  CHECK_FALSE(io_scheduler::runs(io_sys.sys));
}
