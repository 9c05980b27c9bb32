// The `rdd` binary is its own launcher: `rdd train --gpus 4 ...` starts one worker process per GPU
// from the same binary, with the same arguments, and watches them.
//
//   if (auto w = worker_env()) {                 // we are a worker: rendezvous, NCCL, train
//     WorkerSession session = join_worker_session(*w, launch, "training");
//     ...                                         // run with session.comm on session.device
//   } else if (launch.distributed()) {           // we are the launcher
//     return launch_local_workers(launch.spec);  // re-runs this very command line
//   }
//
// with a LaunchOptions `launch` that apps/flags.cpp (add_launch_flags) fills from the subcommand's
// --gpus, --nnodes, --node-rank, --master-addr, --master-port, --rendezvous-timeout, --nccl-timeout.
//
// Each worker gets the launcher's environment plus
//   RDD_RANK, RDD_LOCAL_RANK, RDD_WORLD_SIZE, RDD_LOCAL_WORLD_SIZE, RDD_NODE_RANK,
//   RDD_MASTER_ADDR, RDD_MASTER_PORT, RDD_DEVICE=cuda:<local rank>, and CUDA_DEVICE_ORDER=PCI_BUS_ID
//   unless the user set it
// (CUDA_VISIBLE_DEVICES is left alone: every worker sees every GPU of its node and picks its own, so
// device numbers in messages match nvidia-smi, and NCCL sees the peers it can use for P2P).
// Worker stdin is /dev/null and stdout is inherited (rank 0 prints the progress line); stderr goes
// through a pipe and every line is passed on as "[rank r] line".
//
// Supervision: SIGINT/SIGTERM to the launcher are forwarded to every worker (a second one sends
// SIGKILL); workers that honour it finish their step, write a checkpoint and exit within
// `interrupt_grace_s`. When a worker exits non-zero or dies by a signal, the others get SIGTERM, then SIGKILL
// after `grace_s`; the launcher returns non-zero with a message naming the failing rank, its exit
// status or signal, and its last stderr lines. Each worker runs in its own process group (so a
// worker's children — data loader processes, a shell's commands — are stopped with it) and gets
// SIGKILL if the launcher's thread dies (PR_SET_PDEATHSIG), so nothing is left behind.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dist/rendezvous.h"
#include "dist/communicator.h"
#include "engine/device.h"

namespace rdd::dist {

struct LaunchSpec {
  std::string program = "/proc/self/exe";  // what each worker execs (tests use /bin/sh)
  // The workers' argv, argv[0] included. Empty: this process's own command line (/proc/self/cmdline),
  // which with the default program makes every worker run the command the user typed.
  std::vector<std::string> args;
  int nproc_per_node = 1;                  // --gpus: workers on this node
  int nnodes = 1;                          // --nnodes
  int node_rank = 0;                       // --node-rank: 0..nnodes-1; global rank = node_rank × nproc + local
  std::string master_addr = RendezvousOptions{}.master_addr;  // --master-addr: where global rank 0 listens
  int master_port = RendezvousOptions{}.master_port;         // --master-port; 0 = a free port (single node only)
  double grace_s = 10;                     // SIGTERM → SIGKILL when stopping workers after one failed
  // SIGINT/SIGTERM to the launcher → SIGKILL: workers that honour the signal finish their step and write a
  // checkpoint first (train/signals.h), which may take minutes; a second signal kills them at once.
  double interrupt_grace_s = 600;
  std::vector<std::pair<std::string, std::string>> extra_env;  // more variables for every worker
  // Receives every line the launcher prints: "[rank r] ..." worker stderr and its own messages
  // (without the newline). Default: stderr. Called on the launching thread only.
  std::function<void(std::string_view)> log;
};

struct LaunchResult {
  int exit_code = 0;       // 0 when every worker exited 0; else the failing worker's exit status,
                           // 128 + signal when it died by a signal or the launcher was interrupted
  int failed_rank = -1;    // global rank of the first worker that failed; -1 if none
  bool interrupted = false;  // the launcher got SIGINT/SIGTERM and stopped the workers
  std::string message;     // empty on success; else what happened, with the failing rank's last lines
};

// Starts the workers, forwards signals, waits for all, stops all when one fails. Throws rdd::Error for
// an invalid spec (naming the flag); a worker that cannot be exec'd is reported as a failing rank.
// One launch at a time per process (it installs SIGINT/SIGTERM/SIGCHLD handlers while it runs and
// restores the previous ones).
LaunchResult run_local_workers(const LaunchSpec& spec);

// run_local_workers, then the message (if any) to spec.log; returns the exit code.
int launch_local_workers(const LaunchSpec& spec);

// What a worker learns from its environment; nothing when RDD_RANK is not set (not a worker).
struct WorkerEnv {
  int rank = 0, local_rank = 0, world_size = 1, local_world_size = 1, node_rank = 0;
  std::string master_addr;
  int master_port = 0;
  std::string device;  // "cuda:<local rank>"
};
// Throws rdd::Error naming the variable when one is set but malformed or inconsistent.
std::optional<WorkerEnv> worker_env();
// Same, from any lookup (tests): returns the value of a variable or nothing.
std::optional<WorkerEnv> worker_env_from(const std::function<std::optional<std::string>(const std::string&)>& get);

// The rendezvous a worker joins: rank 0 of its world at RDD_MASTER_ADDR:RDD_MASTER_PORT.
RendezvousOptions rendezvous_options(const WorkerEnv& worker, double timeout_s);

// This process's argv as the kernel has it (/proc/self/cmdline).
std::vector<std::string> own_command_line();

// How a command's worker processes are launched: the values of --gpus ... --nccl-timeout (train, distill
// and eval declare them; apps/flags.cpp binds them).
struct LaunchOptions {
  LaunchSpec spec;  // --gpus (nproc_per_node), --nnodes, --node-rank, --master-addr, --master-port; this command line
  double rendezvous_timeout_s = RendezvousOptions{}.timeout_s;  // --rendezvous-timeout
  double nccl_timeout_s = kDefaultNcclTimeoutS;                 // --nccl-timeout: a collective pending longer aborts the run
  bool gpus_given = false;                                      // --gpus was on the command line
  // Run as launched workers over NCCL: several GPUs or nodes, or `--gpus` given at all (`--gpus 1` runs
  // one worker through the whole data-parallel path, to measure its cost).
  bool distributed() const { return spec.nproc_per_node > 1 || spec.nnodes > 1 || gpus_given; }
};

// A launched worker's place in the job: it joined the rendezvous (kept for the closing barrier: nobody
// tears NCCL down while others still work) and holds an NCCL communicator on its GPU. `what` names the
// command in messages ("training", "evaluation").
struct WorkerSession {
  std::unique_ptr<Rendezvous> rendezvous;
  std::unique_ptr<Communicator> comm;
  Device device;
};
WorkerSession join_worker_session(const WorkerEnv& w, const LaunchOptions& launch, const char* what);

}  // namespace rdd::dist
