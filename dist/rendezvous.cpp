#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

#include "engine/error.h"

namespace rdd::dist {

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kMagic[8] = {'r', 'd', 'd', '-', 'r', 'd', 'z', 'v'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHelloBytes = 8 + 4 + 4 + 4;
constexpr uint32_t kMaxFrameBytes = 1u << 20;  // a payload is an id, not a file

std::string errno_text(int e) { return std::strerror(e); }

void put_u32(std::string& s, uint32_t v) {
  const uint32_t be = htonl(v);
  s.append(reinterpret_cast<const char*>(&be), 4);
}
uint32_t get_u32(const char* p) {
  uint32_t be;
  std::memcpy(&be, p, 4);
  return ntohl(be);
}

std::string frame(char kind, const std::string& bytes) {
  std::string f(1, kind);
  put_u32(f, uint32_t(bytes.size()));
  return f + bytes;
}

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return int(std::clamp<long long>(left, 0, 1 << 30));
}

Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

void set_nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// IPv4 address of `host` (a name or dotted quad).
in_addr resolve_ipv4(const std::string& host) {
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1) return a;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  RDD_CHECK(rc == 0 && res, "rendezvous: cannot resolve the master address '", host, "': ", gai_strerror(rc),
            " (--master-addr)");
  a = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return a;
}

bool is_loopback(in_addr a) { return (ntohl(a.s_addr) >> 24) == 127; }

std::string peer_name(const sockaddr_in& sa) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(sa.sin_port));
}

// Writes all of `data` to a (non-blocking) socket before the deadline. False on error or timeout.
bool send_all(int fd, const std::string& data, Clock::time_point deadline) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      const int left = ms_left(deadline);
      if (left == 0) return false;
      if (::poll(&p, 1, left) < 0 && errno != EINTR) return false;
      continue;
    }
    return false;
  }
  return true;
}

enum class ReadResult { ok, closed, timeout, error };

// Reads exactly n bytes from a (non-blocking) socket before the deadline.
ReadResult recv_exact(int fd, size_t n, std::string& out, Clock::time_point deadline) {
  out.clear();
  char buf[4096];
  while (out.size() < n) {
    const ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (got > 0) {
      out.append(buf, size_t(got));
      continue;
    }
    if (got == 0) return ReadResult::closed;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return ReadResult::error;
    const int left = ms_left(deadline);
    if (left == 0) return ReadResult::timeout;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, left) < 0 && errno != EINTR) return ReadResult::error;
  }
  return ReadResult::ok;
}

// "rank 2" or "ranks 2, 3"
std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

// One byte from each of `fds` (index = rank; -1 entries are skipped) before the deadline.
// Fills `missing` with the ranks that sent nothing in time; throws when one closes or sends the wrong byte.
void collect_byte(const std::vector<int>& fds, char expected, Clock::time_point deadline, const std::string& what,
                  std::vector<int>& missing) {
  std::vector<bool> got(fds.size(), false);
  for (size_t r = 0; r < fds.size(); ++r)
    if (fds[r] < 0) got[r] = true;
  for (;;) {
    std::vector<pollfd> pfds;
    std::vector<int> who;
    for (size_t r = 0; r < fds.size(); ++r)
      if (!got[r]) {
        pfds.push_back({fds[r], POLLIN, 0});
        who.push_back(int(r));
      }
    if (pfds.empty()) break;
    const int left = ms_left(deadline);
    if (left == 0) break;
    const int rc = ::poll(pfds.data(), pfds.size(), left);
    if (rc < 0 && errno != EINTR) fail("rendezvous: poll failed while waiting for ", what, ": ", errno_text(errno));
    for (size_t i = 0; i < pfds.size(); ++i) {
      if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char c = 0;
      const ssize_t n = ::recv(pfds[i].fd, &c, 1, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      RDD_CHECK(n == 1, "rendezvous: rank ", who[i], " closed its connection while rank 0 waited for ", what,
                " (that rank exited or failed; see its log)");
      RDD_CHECK(c == expected, "rendezvous: rank ", who[i], " sent an unexpected byte while rank 0 waited for ", what,
                " (the ranks are out of step: every rank must call broadcast and barrier in the same order)");
      got[size_t(who[i])] = true;
    }
  }
  missing.clear();
  for (size_t r = 0; r < fds.size(); ++r)
    if (!got[r]) missing.push_back(int(r));
}

// A connection rank 0 accepted but whose hello is not complete yet.
struct Pending {
  int fd = -1;
  std::string peer;
  std::string bytes;
};

}  // namespace

std::string format_seconds(double s) {
  char buf[32];
  if (s == std::floor(s) && std::fabs(s) < 1e12) std::snprintf(buf, sizeof buf, "%.0f", s);
  else std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

int pick_free_port(const std::string& addr) {
  const in_addr a = resolve_ipv4(addr);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  RDD_CHECK(fd >= 0, "pick_free_port: socket failed: ", errno_text(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr = a;
  sa.sin_port = 0;
  socklen_t len = sizeof sa;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0;
  const int e = errno;
  ::close(fd);
  RDD_CHECK(ok, "pick_free_port: cannot bind a port on ", addr, ": ", errno_text(e));
  return ntohs(sa.sin_port);
}

Rendezvous::Rendezvous(RendezvousOptions options) : opt_(std::move(options)), port_(opt_.master_port) {
  RDD_CHECK(opt_.world_size >= 1, "rendezvous: the world size must be at least 1, got ", opt_.world_size);
  RDD_CHECK(opt_.rank >= 0 && opt_.rank < opt_.world_size, "rendezvous: rank ", opt_.rank,
            " is outside the world of ", opt_.world_size, " ranks (0..", opt_.world_size - 1, ")");
  RDD_CHECK(opt_.master_port >= 0 && opt_.master_port <= 65535, "rendezvous: master port ", opt_.master_port,
            " is not a TCP port (0..65535; --master-port)");
  RDD_CHECK(opt_.rank == 0 || opt_.master_port != 0,
            "rendezvous: rank ", opt_.rank, " needs the master's port, got 0 (only rank 0 may pick a free port)");
  RDD_CHECK(opt_.timeout_s > 0 && std::isfinite(opt_.timeout_s), "rendezvous: the timeout must be positive, got ",
            opt_.timeout_s, " s");
  if (opt_.rank != 0 || opt_.world_size == 1) return;

  const in_addr a = resolve_ipv4(opt_.master_addr);
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  RDD_CHECK(listen_fd_ >= 0, "rendezvous: socket failed: ", errno_text(errno));
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // restart right after a crash
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = is_loopback(a) ? a.s_addr : htonl(INADDR_ANY);
  sa.sin_port = htons(uint16_t(opt_.master_port));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(listen_fd_, 128) != 0) {
    const int e = errno;
    close_fd(listen_fd_);
    fail("rendezvous: rank 0 cannot listen on ", endpoint(), ": ", errno_text(e),
         e == EADDRINUSE ? " (another run on this port? choose another with --master-port)" : "");
  }
  socklen_t len = sizeof sa;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  set_nonblocking(listen_fd_);
}

Rendezvous::~Rendezvous() {
  close_fd(listen_fd_);
  close_fd(master_fd_);
  for (int& fd : client_fds_) close_fd(fd);
}

std::string Rendezvous::endpoint() const { return opt_.master_addr + ":" + std::to_string(port_); }

std::string Rendezvous::broadcast(const std::string& payload) {
  RDD_CHECK(!broadcast_done_, "rendezvous: broadcast may be called only once");
  RDD_CHECK(payload.size() <= kMaxFrameBytes, "rendezvous: payload of ", payload.size(), " bytes exceeds ",
            kMaxFrameBytes);
  broadcast_done_ = true;
  if (opt_.world_size == 1) return payload;
  return opt_.rank == 0 ? master_broadcast(payload) : client_broadcast();
}

void Rendezvous::tell_clients(const std::string& message) {
  const std::string f = frame('E', message);
  const auto deadline = Clock::now() + std::chrono::milliseconds(200);
  for (int fd : client_fds_)
    if (fd >= 0) send_all(fd, f, deadline);
}

std::string Rendezvous::master_broadcast(const std::string& payload) {
  const int world = opt_.world_size;
  const std::string T = format_seconds(opt_.timeout_s);
  const auto deadline = deadline_after(opt_.timeout_s);
  client_fds_.assign(size_t(world), -1);
  std::vector<std::string> client_peer(static_cast<size_t>(world));
  std::vector<Pending> pending;
  int registered = 0, strays = 0;
  std::string last_stray;

  // A fatal problem: tell every connected rank (and the offending connection), then throw.
  auto fatal = [&](const std::string& message, int offender_fd) {
    const std::string f = frame('E', message);
    if (offender_fd >= 0) send_all(offender_fd, f, Clock::now() + std::chrono::milliseconds(200));
    tell_clients(message);
    for (Pending& p : pending) {  // ranks whose hello is not complete yet learn it too
      if (p.fd != offender_fd) send_all(p.fd, f, Clock::now() + std::chrono::milliseconds(50));
      close_fd(p.fd);
    }
    throw Error(message);
  };

  // Phase 1: accept and register world−1 ranks.
  while (registered < world - 1) {
    const int left = ms_left(deadline);
    if (left == 0) {
      std::vector<int> missing;
      for (int r = 1; r < world; ++r)
        if (client_fds_[size_t(r)] < 0) missing.push_back(r);
      std::string msg = "rendezvous: timed out after " + T + " s waiting for " + rank_list(missing) + " of " +
                        std::to_string(world) + " at " + endpoint();
      if (strays > 0)
        msg += " (refused " + std::to_string(strays) + " connection(s) that were not rdd ranks, the last from " +
               last_stray + ")";
      fatal(msg, -1);
    }
    std::vector<pollfd> pfds{{listen_fd_, POLLIN, 0}};
    for (const Pending& p : pending) pfds.push_back({p.fd, POLLIN, 0});
    const int rc = ::poll(pfds.data(), pfds.size(), left);
    if (rc < 0 && errno != EINTR) fatal("rendezvous: poll failed on rank 0: " + errno_text(errno), -1);
    if (rc <= 0) continue;

    if (pfds[0].revents & POLLIN) {
      for (;;) {
        sockaddr_in sa{};
        socklen_t len = sizeof sa;
        const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pending.push_back({fd, peer_name(sa), {}});
      }
    }
    // Read what the pending connections sent (pfds[i + 1] ↔ pending[i] for those present at poll time).
    const size_t polled = pfds.size() - 1;
    std::vector<Pending> still;
    for (size_t i = 0; i < pending.size(); ++i) {
      Pending& p = pending[i];
      bool drop = false;
      if (i < polled && (pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[64];
        const ssize_t n = ::recv(p.fd, buf, kHelloBytes - p.bytes.size(), 0);
        if (n > 0) p.bytes.append(buf, size_t(n));
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) drop = true;  // went away
      }
      const size_t cmp = std::min(p.bytes.size(), sizeof kMagic);
      if (!drop && std::memcmp(p.bytes.data(), kMagic, cmp) != 0) {
        const std::string msg = "rendezvous: refused the connection from " + p.peer + " to " + endpoint() +
                                ": not an rdd rendezvous client (wrong magic)";
        send_all(p.fd, frame('E', msg), Clock::now() + std::chrono::milliseconds(100));
        ++strays;
        last_stray = p.peer;
        drop = true;
      }
      if (!drop && p.bytes.size() == kHelloBytes) {
        const uint32_t version = get_u32(p.bytes.data() + 8);
        const int64_t rank = get_u32(p.bytes.data() + 12);
        const int64_t their_world = get_u32(p.bytes.data() + 16);
        if (version != kVersion)
          fatal("rendezvous: the rank at " + p.peer + " speaks rendezvous protocol version " + std::to_string(version) +
                    " but rank 0 speaks version " + std::to_string(kVersion) +
                    " (different rdd builds on the nodes? run the same binary everywhere)",
                p.fd);
        if (their_world != world)
          fatal("rendezvous: rank " + std::to_string(rank) + " (from " + p.peer + ") was started with a world size of " +
                    std::to_string(their_world) + " but rank 0 has " + std::to_string(world) +
                    " (use the same --gpus and --nnodes on every node)",
                p.fd);
        if (rank <= 0 || rank >= world)
          fatal("rendezvous: the connection from " + p.peer + " claims rank " + std::to_string(rank) +
                    ", outside 1.." + std::to_string(world - 1) + " (world size " + std::to_string(world) +
                    "; check --node-rank and --nnodes)",
                p.fd);
        if (client_fds_[size_t(rank)] >= 0)
          fatal("rendezvous: rank " + std::to_string(rank) + " joined twice, from " + client_peer[size_t(rank)] +
                    " and from " + p.peer + " (two nodes with the same --node-rank, or two runs on one port?)",
                p.fd);
        client_fds_[size_t(rank)] = p.fd;
        client_peer[size_t(rank)] = p.peer;
        ++registered;
        p.fd = -1;
        continue;  // registered: no longer pending
      }
      if (drop) close_fd(p.fd);
      else still.push_back(std::move(p));
    }
    pending = std::move(still);
  }
  for (Pending& p : pending) close_fd(p.fd);  // late strays
  close_fd(listen_fd_);

  // Phase 2: the payload to everyone, then every ack.
  const std::string f = frame('P', payload);
  for (int r = 1; r < world; ++r)
    if (!send_all(client_fds_[size_t(r)], f, deadline))
      fatal("rendezvous: could not send the id to rank " + std::to_string(r) + " at " + client_peer[size_t(r)] +
                " (it went away; see its log)",
            -1);
  std::vector<int> missing;
  try {
    collect_byte(client_fds_, 'A', deadline, "acknowledgements of the id", missing);
  } catch (const Error& e) {
    fatal(e.what(), -1);
  }
  if (!missing.empty())
    fatal("rendezvous: timed out after " + T + " s waiting for " + rank_list(missing) + " of " + std::to_string(world) +
              " to acknowledge the id at " + endpoint(),
          -1);
  return payload;
}

std::string Rendezvous::client_broadcast() {
  const std::string T = format_seconds(opt_.timeout_s);
  const auto deadline = deadline_after(opt_.timeout_s);
  const in_addr a = resolve_ipv4(opt_.master_addr);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr = a;
  sa.sin_port = htons(uint16_t(opt_.master_port));

  // Connect, retrying until the deadline: rank 0 may start later than we do.
  int last_error = 0;
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    RDD_CHECK(fd >= 0, "rendezvous: socket failed: ", errno_text(errno));
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, std::max(1, ms_left(deadline)));
      int err = ETIMEDOUT;
      if (rc > 0) {
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) {
      master_fd_ = fd;
      break;
    }
    last_error = errno;
    ::close(fd);
    if (ms_left(deadline) == 0)
      fail("rendezvous: could not reach the master at ", endpoint(), " within ", T,
           " s (is rank 0 running? is the port open?); last error: ", errno_text(last_error));
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, ms_left(deadline))));
  }
  const int one = 1;
  ::setsockopt(master_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  std::string hello(kMagic, sizeof kMagic);
  put_u32(hello, kVersion);
  put_u32(hello, uint32_t(opt_.rank));
  put_u32(hello, uint32_t(opt_.world_size));
  RDD_CHECK(send_all(master_fd_, hello, deadline), "rendezvous: rank ", opt_.rank,
            " connected to the master at ", endpoint(), " but could not send its rank: ", errno_text(errno));

  // Connected: wait a little past our own deadline, so that when rank 0 gives up first (a missing
  // rank) its message, which names the missing ranks, arrives here instead of a bare timeout.
  const auto reply_deadline = deadline + std::chrono::seconds(5);
  std::string header, body;
  ReadResult rr = recv_exact(master_fd_, 5, header, reply_deadline);
  if (rr == ReadResult::ok) {
    const uint32_t len = get_u32(header.data() + 1);
    RDD_CHECK((header[0] == 'P' || header[0] == 'E') && len <= kMaxFrameBytes, "rendezvous: rank ", opt_.rank,
              " got an unexpected reply from ", endpoint(), " (is that port an rdd rank 0?)");
    rr = recv_exact(master_fd_, len, body, reply_deadline);
  }
  if (rr == ReadResult::timeout)
    fail("rendezvous: rank ", opt_.rank, " reached the master at ", endpoint(), " but got no id within ", T,
         " s (rank 0 is still waiting for other ranks?)");
  RDD_CHECK(rr == ReadResult::ok, "rendezvous: the master at ", endpoint(), " closed the connection before rank ",
            opt_.rank, " got the id (did rank 0 fail? see its log)");
  if (header[0] == 'E') throw Error(body);
  RDD_CHECK(send_all(master_fd_, "A", reply_deadline), "rendezvous: rank ", opt_.rank,
            " could not acknowledge the id to the master at ", endpoint());
  return body;
}

void Rendezvous::barrier() {
  RDD_CHECK(broadcast_done_, "rendezvous: barrier before broadcast");
  if (opt_.world_size == 1) return;
  const std::string T = format_seconds(opt_.timeout_s);
  const auto deadline = deadline_after(opt_.timeout_s);
  if (opt_.rank == 0) {
    std::vector<int> missing;
    collect_byte(client_fds_, 'B', deadline, "the barrier", missing);
    if (!missing.empty()) {
      const std::string msg = "rendezvous: barrier timed out after " + T + " s waiting for " + rank_list(missing) +
                              " of " + std::to_string(opt_.world_size);
      tell_clients(msg);
      throw Error(msg);
    }
    for (int r = 1; r < opt_.world_size; ++r)
      RDD_CHECK(send_all(client_fds_[size_t(r)], "B", deadline), "rendezvous: barrier: could not release rank ", r,
                " (it went away; see its log)");
    return;
  }
  RDD_CHECK(send_all(master_fd_, "B", deadline), "rendezvous: barrier: rank ", opt_.rank,
            " lost its connection to the master at ", endpoint(), " (did rank 0 fail? see its log)");
  std::string got;
  const ReadResult rr = recv_exact(master_fd_, 1, got, deadline);
  if (rr == ReadResult::timeout)
    fail("rendezvous: barrier timed out after ", T, " s on rank ", opt_.rank, " (some rank has not arrived)");
  RDD_CHECK(rr == ReadResult::ok, "rendezvous: barrier: the master at ", endpoint(),
            " closed the connection (did rank 0 fail? see its log)");
  if (got[0] == 'E') {  // rank 0 timed out and says why: 'E' + u32 length + message
    std::string header, body;
    if (recv_exact(master_fd_, 4, header, Clock::now() + std::chrono::seconds(1)) == ReadResult::ok &&
        recv_exact(master_fd_, std::min(get_u32(header.data()), kMaxFrameBytes), body,
                   Clock::now() + std::chrono::seconds(1)) == ReadResult::ok)
      throw Error(body);
    fail("rendezvous: barrier failed on rank 0 (see its log)");
  }
  RDD_CHECK(got[0] == 'B', "rendezvous: barrier: unexpected reply from the master at ", endpoint());
}

}  // namespace rdd::dist
