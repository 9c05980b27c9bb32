// TCP rendezvous over loopback, ranks as threads: payload delivery, late master, timeouts, and the
// connections it must refuse (stray clients, duplicate ranks, ranks outside the world, other versions).
#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <thread>

#include "engine/error.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::dist;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// 128 random bytes, like an ncclUniqueId, including zero bytes (the id is binary, not text).
std::string random_payload(uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(128, '\0');
  for (char& c : s) c = char(gen() & 0xff);
  s[5] = '\0';
  s[77] = '\0';
  return s;
}

// Runs `body` on a thread; an exception's message lands in `error`.
std::thread rank_thread(std::string& error, std::function<void()> body) {
  return std::thread([&error, body = std::move(body)] {
    try {
      body();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
}

RendezvousOptions options(int rank, int world, int port, double timeout_s) {
  RendezvousOptions o;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.rank = rank;
  o.world_size = world;
  o.timeout_s = timeout_s;
  return o;
}

// A raw TCP client: connects, sends `bytes`, returns everything the server answers until it closes.
std::string raw_exchange(int port, const std::string& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "raw_exchange: socket failed";
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) != ssize_t(bytes.size())) {
    ::close(fd);
    return "raw_exchange: connect or send failed";
  }
  std::string got;
  char buf[512];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, size_t(n));
  ::close(fd);
  return got;
}

std::string hello(uint32_t version, uint32_t rank, uint32_t world) {
  std::string s = "rdd-rdzv";
  for (uint32_t v : {version, rank, world}) {
    const uint32_t be = htonl(v);
    s.append(reinterpret_cast<const char*>(&be), 4);
  }
  return s;
}

}  // namespace

TEST_CASE("rendezvous delivers rank 0's payload identically to 1, 2 and 4 ranks") {
  for (int world : {1, 2, 4}) {
    CAPTURE(world);
    const std::string payload = random_payload(uint32_t(world));
    Rendezvous master(options(0, world, 0, 10));
    if (world > 1) CHECK(master.port() > 0);
    std::vector<std::string> got(static_cast<size_t>(world)), errors(static_cast<size_t>(world));
    std::vector<std::thread> threads;
    for (int r = 1; r < world; ++r)
      threads.push_back(rank_thread(errors[size_t(r)], [&, r] {
        Rendezvous rdzv(options(r, world, master.port(), 10));
        got[size_t(r)] = rdzv.broadcast();
        rdzv.barrier();
      }));
    got[0] = master.broadcast(payload);
    master.barrier();
    for (auto& t : threads) t.join();
    for (int r = 0; r < world; ++r) {
      CAPTURE(r);
      CHECK(errors[size_t(r)] == "");
      CHECK(got[size_t(r)].size() == 128);
      CHECK(got[size_t(r)] == payload);
    }
  }
}

TEST_CASE("rendezvous resolves a host name for the master address") {
  RendezvousOptions m = options(0, 2, 0, 10), c = options(1, 2, 0, 10);
  m.master_addr = c.master_addr = "localhost";
  Rendezvous master(m);
  c.master_port = master.port();
  std::string got, error;
  std::thread t = rank_thread(error, [&] { got = Rendezvous(c).broadcast(); });
  CHECK(master.broadcast("over localhost") == "over localhost");
  t.join();
  CHECK(error == "");
  CHECK(got == "over localhost");
}

TEST_CASE("rendezvous barrier releases no rank before the last one arrives") {
  const int world = 3;
  Rendezvous master(options(0, world, 0, 10));
  std::vector<std::string> errors(world);
  std::vector<Clock::time_point> released(world);
  std::atomic<int64_t> last_arrival_ns{0};
  auto arrive = [&] { last_arrival_ns = Clock::now().time_since_epoch().count(); };
  std::vector<std::thread> threads;
  for (int r = 1; r < world; ++r)
    threads.push_back(rank_thread(errors[size_t(r)], [&, r] {
      Rendezvous rdzv(options(r, world, master.port(), 10));
      if (rdzv.broadcast() != "go") throw Error("rank got the wrong payload");
      if (r == 2) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        arrive();  // the last rank to reach the barrier
      }
      rdzv.barrier();
      released[size_t(r)] = Clock::now();
    }));
  master.broadcast("go");
  master.barrier();
  released[0] = Clock::now();
  for (auto& t : threads) t.join();
  REQUIRE(last_arrival_ns.load() != 0);
  for (int r = 0; r < world; ++r) {
    CAPTURE(r);
    CHECK(errors[size_t(r)] == "");
    CHECK(released[size_t(r)].time_since_epoch().count() >= last_arrival_ns.load());
  }
}

TEST_CASE("rendezvous clients retry until a late master starts") {
  const int world = 4, port = pick_free_port();
  const std::string payload = random_payload(7);
  std::vector<std::string> got(world), errors(world);
  std::vector<std::thread> threads;
  for (int r = 1; r < world; ++r)
    threads.push_back(rank_thread(errors[size_t(r)], [&, r] {
      Rendezvous rdzv(options(r, world, port, 10));
      got[size_t(r)] = rdzv.broadcast();
    }));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // the clients are refused and retry meanwhile
  Rendezvous master(options(0, world, port, 10));
  CHECK(master.port() == port);
  got[0] = master.broadcast(payload);
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    CAPTURE(r);
    CHECK(errors[size_t(r)] == "");
    CHECK(got[size_t(r)] == payload);
  }
}

TEST_CASE("rendezvous: rank 0 times out naming the ranks that never arrived, and tells the ones that did") {
  const int world = 4;
  Rendezvous master(options(0, world, 0, 1));
  const std::string expected = "rendezvous: timed out after 1 s waiting for ranks 2, 3 of 4 at 127.0.0.1:" +
                               std::to_string(master.port());
  std::string client_error;
  std::thread rank1 = rank_thread(client_error, [&] {
    Rendezvous rdzv(options(1, world, master.port(), 10));
    rdzv.broadcast();
  });
  const auto t0 = Clock::now();
  std::string master_error;
  try {
    master.broadcast(random_payload(1));
  } catch (const Error& e) {
    master_error = e.what();
  }
  rank1.join();
  const double elapsed = seconds_since(t0);
  CHECK(master_error == expected);
  CHECK(client_error == expected);  // rank 1 reports rank 0's reason, not a bare "connection closed"
  CHECK(elapsed >= 0.9);
  CHECK(elapsed < 5);
}

TEST_CASE("rendezvous: a client that cannot reach the master times out with advice") {
  const int port = pick_free_port();  // nobody listens there
  const auto t0 = Clock::now();
  Rendezvous rdzv(options(2, 4, port, 0.5));
  const std::string expected = "rendezvous: could not reach the master at 127.0.0.1:" + std::to_string(port) +
                               " within 0.5 s (is rank 0 running? is the port open?)";
  CHECK_THROWS_WITH_AS(rdzv.broadcast(), doctest::Contains(expected.c_str()), Error);
  const double elapsed = seconds_since(t0);
  CHECK(elapsed >= 0.45);
  CHECK(elapsed < 3);
}

TEST_CASE("rendezvous refuses a stray connection with a message and carries on") {
  Rendezvous master(options(0, 2, 0, 10));
  std::string stray_reply, client_error, got, master_error;
  std::atomic<bool> stray_answered{false};
  std::thread stray([&] {
    stray_reply = raw_exchange(master.port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    stray_answered = true;
  });
  // Rank 1 joins only after the stray has been answered, so the master must survive the stray.
  std::thread rank1 = rank_thread(client_error, [&] {
    while (!stray_answered) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    Rendezvous rdzv(options(1, 2, master.port(), 10));
    got = rdzv.broadcast();
  });
  try {
    master.broadcast("payload");
  } catch (const Error& e) {
    master_error = e.what();
  }
  stray.join();
  rank1.join();
  CHECK(stray_reply.find("not an rdd rendezvous client (wrong magic)") != std::string::npos);
  CHECK(stray_reply[0] == 'E');
  CHECK(master_error == "");
  CHECK(client_error == "");
  CHECK(got == "payload");
}

TEST_CASE("rendezvous refuses a rank that joins twice") {
  const int world = 3;
  Rendezvous master(options(0, world, 0, 10));
  std::string e1, e2, master_error;
  std::thread a = rank_thread(e1, [&] { Rendezvous(options(1, world, master.port(), 10)).broadcast(); });
  std::thread b = rank_thread(e2, [&] { Rendezvous(options(1, world, master.port(), 10)).broadcast(); });
  try {
    master.broadcast("x");
  } catch (const Error& e) {
    master_error = e.what();
  }
  a.join();
  b.join();
  CHECK(master_error.find("rendezvous: rank 1 joined twice") != std::string::npos);
  CHECK(master_error.find("--node-rank") != std::string::npos);
  CHECK(e1 == master_error);  // both clients learn why
  CHECK(e2 == master_error);
}

TEST_CASE("rendezvous refuses mismatched world sizes, ranks outside the world and other protocol versions") {
  SUBCASE("world size") {
    Rendezvous master(options(0, 2, 0, 10));
    std::string client_error;
    std::thread c = rank_thread(client_error, [&] { Rendezvous(options(3, 4, master.port(), 10)).broadcast(); });
    CHECK_THROWS_WITH_AS(master.broadcast("x"),
                         doctest::Contains("was started with a world size of 4 but rank 0 has 2"),
                         Error);
    c.join();
    CHECK(client_error.find("world size of 4 but rank 0 has 2") != std::string::npos);
  }
  SUBCASE("rank outside the world") {
    Rendezvous master(options(0, 2, 0, 10));
    std::string reply;
    std::thread c([&] { reply = raw_exchange(master.port(), hello(1, 7, 2)); });
    CHECK_THROWS_WITH_AS(master.broadcast("x"), doctest::Contains("claims rank 7, outside 1..1 (world size 2"), Error);
    c.join();
    CHECK(reply.find("claims rank 7") != std::string::npos);
  }
  SUBCASE("protocol version") {
    Rendezvous master(options(0, 2, 0, 10));
    std::string reply;
    std::thread c([&] { reply = raw_exchange(master.port(), hello(99, 1, 2)); });
    CHECK_THROWS_WITH_AS(master.broadcast("x"), doctest::Contains("speaks rendezvous protocol version 99"), Error);
    c.join();
    CHECK(reply.find("version 99") != std::string::npos);
  }
  SUBCASE("options") {
    CHECK_THROWS_WITH_AS(Rendezvous(options(4, 4, 1234, 1)), "rendezvous: rank 4 is outside the world of 4 ranks (0..3)",
                         Error);
    CHECK_THROWS_WITH_AS(Rendezvous(options(1, 4, 0, 1)), doctest::Contains("only rank 0 may pick a free port"), Error);
    CHECK_THROWS_WITH_AS(Rendezvous(options(1, 4, 70000, 1)), doctest::Contains("master port 70000"), Error);
    CHECK_THROWS_WITH_AS(Rendezvous(options(1, 2, 1234, 0)), doctest::Contains("timeout must be positive"), Error);
    RendezvousOptions bad_host = options(1, 2, 1234, 1);
    bad_host.master_addr = "no-such-host.invalid";
    Rendezvous r(bad_host);
    CHECK_THROWS_WITH_AS(r.broadcast(), doctest::Contains("cannot resolve the master address 'no-such-host.invalid'"),
                         Error);
  }
}

TEST_CASE("rendezvous: rank 0's barrier names a rank that went away") {
  Rendezvous master(options(0, 2, 0, 10));
  std::string client_error;
  std::thread c = rank_thread(client_error, [&] {
    Rendezvous rdzv(options(1, 2, master.port(), 10));
    rdzv.broadcast();
  });  // rank 1 closes its connection without reaching the barrier
  master.broadcast("x");
  c.join();
  CHECK(client_error == "");
  const auto t0 = Clock::now();
  CHECK_THROWS_WITH_AS(master.barrier(), doctest::Contains("rendezvous: rank 1 closed its connection"), Error);
  CHECK(seconds_since(t0) < 5);
}

TEST_CASE("format_seconds") {
  CHECK(format_seconds(300) == "300");
  CHECK(format_seconds(1) == "1");
  CHECK(format_seconds(0.5) == "0.5");
  CHECK(format_seconds(2.25) == "2.25");
}
