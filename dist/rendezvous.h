// TCP rendezvous: rank 0 hands a small payload (the 128-byte NCCL unique id) to every rank.
//
//   RendezvousOptions opt{.master_addr = env.master_addr, .master_port = env.master_port,
//                         .rank = env.rank, .world_size = env.world_size};
//   Rendezvous rdzv(opt);                                   // rank 0 starts listening here
//   std::string id = rdzv.broadcast(rank == 0 ? nccl_unique_id() : std::string());
//   auto comm = make_nccl_communicator(id, env.rank, env.world_size, device);
//   ...
//   rdzv.barrier();                                         // e.g. before exit
//
// Protocol (plain POSIX sockets, IPv4, integers big-endian):
//   client → master  hello: magic "rdd-rdzv", u32 protocol version, u32 rank, u32 world size
//   master → client  frame: one byte kind ('P' payload, 'E' error) + u32 length + bytes
//   client → master  'A' (ack; the master returns from broadcast() once every rank has acked)
//   barrier          every client sends 'B'; once all have, the master answers 'B' to each
// Rank 0 keeps one connection per other rank open until the Rendezvous is destroyed, so barrier()
// reuses them; the other ranks never talk to each other.
//
// Every wait has a deadline (`timeout_s`, default 300 s) and every failure is an rdd::Error that
// says what to check: a rank that never arrives, a master that cannot be reached, two processes
// claiming the same rank, a rank outside the world, mismatched world sizes or protocol versions.
// A connection that does not start with the magic (a port scanner, a stray client) is answered
// with an error frame, closed, and otherwise ignored — it does not stop the rendezvous.
// When rank 0 fails (timeout, duplicate rank, ...) it sends its message to every connected rank
// before throwing, so every rank's log names the real cause.
//
// Listening address: when master_addr is a loopback address rank 0 listens on it only (single-node
// runs and tests expose nothing); otherwise it listens on all interfaces, because a host's own name
// often resolves to a different local address on the host itself (Debian maps it to 127.0.1.1).
#pragma once

#include <string>
#include <vector>

namespace rdd::dist {

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";  // host name or dotted IPv4 address of rank 0
  int master_port = 29500;                // rank 0: 0 picks a free port (see Rendezvous::port())
  int rank = 0;
  int world_size = 1;
  double timeout_s = 300;                 // for connecting, waiting for ranks, acks and barriers
};

class Rendezvous {
 public:
  // Rank 0 (with world_size > 1) binds and listens here, so port() is known before broadcast().
  // Other ranks only validate their options; they connect in broadcast().
  explicit Rendezvous(RendezvousOptions options);
  ~Rendezvous();
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  // The port rank 0 listens on (the chosen one when master_port was 0); master_port elsewhere.
  int port() const { return port_; }
  const RendezvousOptions& options() const { return opt_; }

  // Rank 0 passes the payload; the others pass nothing. Every rank returns rank 0's payload.
  // Rank 0 returns once every rank has received it (acked). Call once.
  std::string broadcast(const std::string& payload = {});

  // Every rank waits until all ranks have called barrier(). Only after broadcast().
  void barrier();

 private:
  std::string endpoint() const;  // "ADDR:PORT" for messages
  std::string master_broadcast(const std::string& payload);
  std::string client_broadcast();
  // Rank 0: sends an error frame with `message` to every connected rank (best effort).
  void tell_clients(const std::string& message);

  RendezvousOptions opt_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::vector<int> client_fds_;  // rank 0: index r holds rank r's connection (-1 for r = 0)
  int master_fd_ = -1;           // other ranks: the connection to rank 0
  bool broadcast_done_ = false;
};

// A port on `addr` that was free a moment ago (bind to port 0, read it, close). Another process may
// take it before it is used again; for single-node launches and tests.
int pick_free_port(const std::string& addr = "127.0.0.1");

// "1", "0.5", "300": seconds as they appear in messages.
std::string format_seconds(double s);

}  // namespace rdd::dist
