// The multi-process launcher: workers are /bin/sh scripts (and, end to end, this test binary itself
// running a rendezvous), so every case runs on a CPU-only machine in a few seconds.
#include "dist/launcher.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "dist/rendezvous.h"
#include "dist/communicator.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/tensor.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::dist;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A spec that runs `script` with /bin/sh in every worker and captures what the launcher prints.
LaunchSpec sh_spec(const std::string& script, int nproc, std::vector<std::string>* lines) {
  LaunchSpec spec;
  spec.program = "/bin/sh";
  spec.args = {"sh", "-c", script};
  spec.nproc_per_node = nproc;
  spec.master_port = 29999;  // only passed on; nothing listens in these scripts
  spec.grace_s = 5;
  spec.log = [lines](std::string_view line) { lines->emplace_back(line); };
  return spec;
}

bool has_line(const std::vector<std::string>& lines, const std::string& want) {
  return std::find(lines.begin(), lines.end(), want) != lines.end();
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// True once `pid` no longer runs (gone, or a zombie nobody has reaped yet). Waits up to `wait_s`.
bool process_gone(pid_t pid, double wait_s = 3) {
  const auto t0 = Clock::now();
  for (;;) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string pid_s, comm, state;
    if (stat >> pid_s >> comm >> state && state == "Z") return true;
    if (seconds_since(t0) > wait_s) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<pid_t> read_pids(const std::string& dir, const std::string& prefix, int count) {
  std::vector<pid_t> pids;
  for (int r = 0; r < count; ++r) {
    std::ifstream f(dir + "/" + prefix + std::to_string(r));
    pid_t pid = 0;
    if (f >> pid) pids.push_back(pid);
  }
  return pids;
}

}  // namespace

TEST_CASE("launcher: workers get rank, world, master and device from the environment; stderr is prefixed") {
  std::vector<std::string> lines;
  LaunchSpec spec = sh_spec(
      "echo \"rank=$RDD_RANK local=$RDD_LOCAL_RANK world=$RDD_WORLD_SIZE local_world=$RDD_LOCAL_WORLD_SIZE "
      "node=$RDD_NODE_RANK master=$RDD_MASTER_ADDR:$RDD_MASTER_PORT device=$RDD_DEVICE extra=$RDD_TEST_EXTRA "
      "order=$CUDA_DEVICE_ORDER\" >&2; "
      "printf 'no newline at the end' >&2",
      3, &lines);
  spec.nnodes = 2;
  spec.node_rank = 1;
  spec.extra_env = {{"RDD_TEST_EXTRA", "yes"}};
  const LaunchResult r = run_local_workers(spec);
  CAPTURE(joined(lines));
  CHECK(r.exit_code == 0);
  CHECK(r.failed_rank == -1);
  CHECK_FALSE(r.interrupted);
  CHECK(r.message == "");
  // GPUs numbered as nvidia-smi does, unless the user chose an order.
  const std::string order = std::getenv("CUDA_DEVICE_ORDER") ? std::getenv("CUDA_DEVICE_ORDER") : "PCI_BUS_ID";
  for (int local = 0; local < 3; ++local) {
    const int rank = 3 + local;
    const std::string prefix = "[rank " + std::to_string(rank) + "] ";
    CHECK(has_line(lines, prefix + "rank=" + std::to_string(rank) + " local=" + std::to_string(local) +
                              " world=6 local_world=3 node=1 master=127.0.0.1:29999 device=cuda:" +
                              std::to_string(local) + " extra=yes order=" + order));
    CHECK(has_line(lines, prefix + "no newline at the end"));
  }
  CHECK(lines.size() == 6);
}

TEST_CASE("launcher: one failing worker stops the others at once and is named with its last lines") {
  const std::string dir = test::temp_dir("launch-fail");
  std::vector<std::string> lines;
  // Rank 2 fails after the others are asleep; each other rank's shell waits on a child `sleep 60`
  // (the child must be stopped too: it is in the worker's process group).
  LaunchSpec spec = sh_spec(
      "if [ \"$RDD_RANK\" = 2 ]; then "
      "  while [ ! -s " + dir + "/sleep.0 ] || [ ! -s " + dir + "/sleep.1 ] || [ ! -s " + dir + "/sleep.3 ]; do "
      "    sleep 0.05; done; "
      "  echo 'loading the teacher' >&2; echo 'rank two fails here' >&2; exit 3; "
      "fi; sleep 60 & echo $! > " + dir + "/sleep.$RDD_RANK; wait",
      4, &lines);
  const auto t0 = Clock::now();
  const LaunchResult r = run_local_workers(spec);
  const double elapsed = seconds_since(t0);
  CAPTURE(joined(lines));
  CAPTURE(r.message);
  CHECK(elapsed < 5);  // far below the others' 60 s
  CHECK(r.exit_code == 3);
  CHECK(r.failed_rank == 2);
  CHECK_FALSE(r.interrupted);
  CHECK(r.message.find("rdd launch: rank 2 (local rank 2 on node 0) exited with status 3; stopped the other 3 workers") ==
        0);
  CHECK(r.message.find("last lines from rank 2:\n  [rank 2] loading the teacher\n  [rank 2] rank two fails here") !=
        std::string::npos);
  CHECK(has_line(lines, "[rank 2] rank two fails here"));
  const std::vector<pid_t> sleepers = read_pids(dir, "sleep.", 4);
  CHECK(sleepers.size() == 3);
  for (pid_t pid : sleepers) {
    CAPTURE(pid);
    CHECK(process_gone(pid));
  }
}

TEST_CASE("launcher: a worker that ignores SIGTERM is killed after the grace period") {
  const std::string dir = test::temp_dir("launch-grace");
  std::vector<std::string> lines;
  LaunchSpec spec = sh_spec(
      "if [ \"$RDD_RANK\" = 1 ]; then while [ ! -s " + dir + "/sleep.0 ]; do sleep 0.05; done; exit 5; fi; "
      "trap '' TERM; sleep 60 & echo $! > " + dir + "/sleep.$RDD_RANK; wait",
      2, &lines);
  spec.grace_s = 0.5;
  const auto t0 = Clock::now();
  const LaunchResult r = run_local_workers(spec);
  const double elapsed = seconds_since(t0);
  CAPTURE(r.message);
  CHECK(elapsed >= 0.5);  // the grace period
  CHECK(elapsed < 5);
  CHECK(r.exit_code == 5);
  CHECK(r.failed_rank == 1);
  CHECK(r.message.find("rank 1 (local rank 1 on node 0) exited with status 5") != std::string::npos);
  CHECK(r.message.find("rank 0 did not stop within 0.5 s of SIGTERM and was killed") != std::string::npos);
  CHECK(r.message.find("rank 1 wrote nothing to stderr") != std::string::npos);
  const std::vector<pid_t> sleepers = read_pids(dir, "sleep.", 2);
  REQUIRE(sleepers.size() == 1);
  CHECK(process_gone(sleepers[0]));
}

TEST_CASE("launcher: a worker killed by a signal is reported with the signal") {
  std::vector<std::string> lines;
  LaunchSpec spec =
      sh_spec("if [ \"$RDD_RANK\" = 0 ]; then echo 'about to die' >&2; kill -KILL $$; fi; sleep 60", 2, &lines);
  const auto t0 = Clock::now();
  const LaunchResult r = run_local_workers(spec);
  CAPTURE(r.message);
  CHECK(seconds_since(t0) < 5);
  CHECK(r.failed_rank == 0);
  CHECK(r.exit_code == 128 + SIGKILL);
  CHECK(r.message.find("rank 0 (local rank 0 on node 0) was killed by signal 9 (SIGKILL)") != std::string::npos);
  CHECK(r.message.find("[rank 0] about to die") != std::string::npos);
}

TEST_CASE("launcher: a program that cannot be executed is a failing rank, not a hang") {
  std::vector<std::string> lines;
  LaunchSpec spec = sh_spec("", 2, &lines);
  spec.program = "/nonexistent/rdd-worker";
  const auto t0 = Clock::now();
  const LaunchResult r = run_local_workers(spec);
  CAPTURE(r.message);
  CHECK(seconds_since(t0) < 5);
  CHECK(r.exit_code == 127);
  // Both ranks fail at once; the launcher names the first whose exit it saw.
  REQUIRE((r.failed_rank == 0 || r.failed_rank == 1));
  const std::string who = "rank " + std::to_string(r.failed_rank) + " (local rank " + std::to_string(r.failed_rank) +
                          " on node 0) could not be started: cannot execute /nonexistent/rdd-worker: "
                          "No such file or directory";
  CHECK(r.message.find(who) != std::string::npos);
}

// Runs the workers and sends SIGTERM to this process (the launcher) once both workers have written
// DIR/started.<rank>: only then are the launcher's handlers installed and the workers running.
LaunchResult run_and_interrupt_when_started(const LaunchSpec& spec, const std::string& dir) {
  std::atomic<bool> done{false};
  std::thread interrupter([&] {
    const auto t0 = Clock::now();
    while (!done && seconds_since(t0) < 20) {
      if (std::filesystem::exists(dir + "/started.0") && std::filesystem::exists(dir + "/started.1")) {
        ::kill(::getpid(), SIGTERM);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const LaunchResult r = run_local_workers(spec);
  done = true;
  interrupter.join();
  return r;
}

TEST_CASE("launcher: SIGTERM to the launcher is passed on to every worker") {
  const std::string dir = test::temp_dir("launch-signal");
  std::vector<std::string> lines;
  LaunchSpec spec = sh_spec("echo started > " + dir + "/started.$RDD_RANK; exec sleep 60", 2, &lines);
  const auto t0 = Clock::now();
  const LaunchResult r = run_and_interrupt_when_started(spec, dir);
  CAPTURE(r.message);
  CHECK(seconds_since(t0) < 10);
  CHECK(r.interrupted);
  CHECK(r.failed_rank == -1);
  CHECK(r.exit_code == 128 + SIGTERM);
  CHECK(r.message == "rdd launch: interrupted by SIGTERM; passed it on to the workers; stopped 2 workers");
}

TEST_CASE("launcher: after SIGTERM, workers get interrupt_grace_s to finish their step and checkpoint") {
  const std::string dir = test::temp_dir("launch-interrupt-grace");
  std::vector<std::string> lines;
  // Each worker honours SIGTERM as the trainer does: a while to finish, then its checkpoint, then out.
  LaunchSpec spec = sh_spec("trap 'sleep 1; echo saved > " + dir + "/saved.$RDD_RANK; exit 143' TERM; echo started > " +
                                dir + "/started.$RDD_RANK; sleep 60 & wait",
                            2, &lines);
  spec.grace_s = 0.1;            // the failure grace period does not apply to an interrupt
  spec.interrupt_grace_s = 30;
  const LaunchResult r = run_and_interrupt_when_started(spec, dir);
  CAPTURE(r.message);
  CHECK(r.interrupted);
  CHECK(r.exit_code == 128 + SIGTERM);
  CHECK(std::filesystem::exists(dir + "/saved.0"));
  CHECK(std::filesystem::exists(dir + "/saved.1"));
  CHECK(r.message.find("killed") == std::string::npos);

  // Workers that do not finish within interrupt_grace_s are killed, and the message names that period.
  const std::string dir2 = test::temp_dir("launch-interrupt-kill");
  LaunchSpec stuck = sh_spec("trap '' TERM; echo started > " + dir2 + "/started.$RDD_RANK; sleep 60 & wait", 2, &lines);
  stuck.grace_s = 60;
  stuck.interrupt_grace_s = 0.5;
  const auto t0 = Clock::now();
  const LaunchResult k = run_and_interrupt_when_started(stuck, dir2);
  CAPTURE(k.message);
  CHECK(seconds_since(t0) < 10);
  CHECK(k.message.find("did not stop within 0.5 s and were killed") != std::string::npos);
}

TEST_CASE("launcher: a second SIGINT kills workers that ignore the first") {
  const std::string dir = test::temp_dir("launch-sigint");
  std::vector<std::string> lines;
  LaunchSpec spec =
      sh_spec("trap '' INT TERM; echo started > " + dir + "/started.$RDD_RANK; sleep 60 & wait", 2, &lines);
  spec.grace_s = 60;  // only the second signal can end this quickly
  std::atomic<bool> done{false};
  std::thread interrupter([&] {
    const auto t0 = Clock::now();
    while (!done && seconds_since(t0) < 20) {
      if (std::filesystem::exists(dir + "/started.0") && std::filesystem::exists(dir + "/started.1")) {
        ::kill(::getpid(), SIGINT);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        if (!done) ::kill(::getpid(), SIGINT);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const auto t0 = Clock::now();
  const LaunchResult r = run_local_workers(spec);
  done = true;
  interrupter.join();
  CAPTURE(joined(lines));
  CAPTURE(r.message);
  CHECK(seconds_since(t0) < 10);
  CHECK(r.interrupted);
  CHECK(r.exit_code == 128 + SIGINT);
  CHECK(has_line(lines, "rdd launch: second SIGINT: killing the workers"));
  CHECK(r.message.find("rdd launch: interrupted by SIGINT") == 0);
}

TEST_CASE("launcher: launch_local_workers prints the failure and returns its exit code") {
  std::vector<std::string> lines;
  LaunchSpec spec = sh_spec("echo \"bye from $RDD_RANK\" >&2; exit $((RDD_RANK + 6))", 1, &lines);
  CHECK(launch_local_workers(spec) == 6);
  REQUIRE(lines.size() >= 3);
  CHECK(lines[0] == "[rank 0] bye from 0");
  CHECK(lines[1] == "rdd launch: rank 0 (local rank 0 on node 0) exited with status 6");
  CHECK(lines[2] == "last lines from rank 0:");
}

TEST_CASE("launcher: master port 0 picks a free port for the workers") {
  std::vector<std::string> lines;
  LaunchSpec spec = sh_spec("echo \"port=$RDD_MASTER_PORT\" >&2", 2, &lines);
  spec.master_port = 0;
  REQUIRE(run_local_workers(spec).exit_code == 0);
  REQUIRE(lines.size() == 2);
  const std::string p0 = lines[0].substr(lines[0].find("port=") + 5), p1 = lines[1].substr(lines[1].find("port=") + 5);
  CHECK(p0 == p1);
  CHECK(std::stoi(p0) > 0);
  CHECK(std::stoi(p0) <= 65535);
}

TEST_CASE("launcher: invalid specs are refused naming the flag") {
  std::vector<std::string> lines;
  LaunchSpec spec = sh_spec("true", 0, &lines);
  CHECK_THROWS_WITH_AS(run_local_workers(spec), "launch: --gpus must be at least 1, got 0", Error);
  spec.nproc_per_node = 2;
  spec.nnodes = 2;
  spec.node_rank = 2;
  CHECK_THROWS_WITH_AS(run_local_workers(spec), "launch: --node-rank 2 is outside 0..1 (--nnodes 2)", Error);
  spec.node_rank = 1;
  spec.master_port = 0;
  CHECK_THROWS_WITH_AS(run_local_workers(spec), doctest::Contains("--master-port 0 (pick a free port) works only with --nnodes 1"),
                       Error);
  spec.master_port = 29999;
  spec.args = {"", "-c", "true"};
  CHECK_THROWS_WITH_AS(run_local_workers(spec), doctest::Contains("must start with argv[0]"), Error);
  CHECK(lines.empty());  // nothing was started
}

TEST_CASE("worker_env reads what the launcher sets and refuses malformed values") {
  std::map<std::string, std::string> env;
  auto get = [&](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  CHECK_FALSE(worker_env_from(get).has_value());  // not a worker
  env = {{"RDD_RANK", "5"},        {"RDD_LOCAL_RANK", "1"},   {"RDD_WORLD_SIZE", "8"},
         {"RDD_LOCAL_WORLD_SIZE", "4"}, {"RDD_NODE_RANK", "1"}, {"RDD_MASTER_ADDR", "10.0.0.1"},
         {"RDD_MASTER_PORT", "29500"}, {"RDD_DEVICE", "cuda:1"}};
  const auto w = worker_env_from(get);
  REQUIRE(w.has_value());
  CHECK(w->rank == 5);
  CHECK(w->local_rank == 1);
  CHECK(w->world_size == 8);
  CHECK(w->local_world_size == 4);
  CHECK(w->node_rank == 1);
  CHECK(w->master_addr == "10.0.0.1");
  CHECK(w->master_port == 29500);
  CHECK(w->device == "cuda:1");

  env["RDD_RANK"] = "five";
  CHECK_THROWS_WITH_AS(worker_env_from(get), "worker environment: RDD_RANK='five' is not a non-negative integer", Error);
  env["RDD_RANK"] = "8";
  CHECK_THROWS_WITH_AS(worker_env_from(get), "worker environment: RDD_RANK=8 is outside RDD_WORLD_SIZE=8", Error);
  env["RDD_RANK"] = "5";
  env.erase("RDD_MASTER_ADDR");
  CHECK_THROWS_WITH_AS(worker_env_from(get), doctest::Contains("RDD_MASTER_ADDR is not"), Error);
}

TEST_CASE("own_command_line reads this process's argv; rendezvous_options come from the worker environment") {
  const std::vector<std::string> args = own_command_line();
  REQUIRE_FALSE(args.empty());
  CHECK(args[0].find("test_dist") != std::string::npos);
  WorkerEnv w;
  w.rank = 3;
  w.world_size = 8;
  w.master_addr = "node0";
  w.master_port = 29501;
  const RendezvousOptions o = rendezvous_options(w, 42);
  CHECK(o.rank == 3);
  CHECK(o.world_size == 8);
  CHECK(o.master_addr == "node0");
  CHECK(o.master_port == 29501);
  CHECK(o.timeout_s == 42);
}

// ---- end to end: the launcher starts copies of this test binary, which rendezvous over TCP ----------

// Runs only inside workers started by the cases below (skipped in ordinary runs): rank 0 makes a random
// payload and the rendezvous hands it to every rank; each rank prints what it got, then all meet at a
// barrier. RDD_TEST_FAIL_RANK makes one rank exit with status 4 before the rendezvous.
TEST_CASE("launcher worker: rendezvous from the environment" * doctest::skip()) {
  const auto w = worker_env();
  REQUIRE(w.has_value());
  std::signal(SIGTERM, SIG_DFL);  // the launcher stopping this worker is expected, not a crash to report
  if (const char* fail_rank = std::getenv("RDD_TEST_FAIL_RANK"); fail_rank && std::atoi(fail_rank) == w->rank) {
    std::fprintf(stderr, "rank %d fails on purpose\n", w->rank);
    std::fflush(stderr);
    std::_Exit(4);
  }
  Rendezvous rdzv(rendezvous_options(*w, 30));
  std::string payload;
  if (w->rank == 0) {
    std::random_device rd;
    for (int i = 0; i < 16; ++i) payload += "0123456789abcdef"[rd() % 16];
  }
  const std::string got = rdzv.broadcast(payload);
  std::fprintf(stderr, "payload=%s device=%s\n", got.c_str(), w->device.c_str());
  std::fflush(stderr);
  rdzv.barrier();
}

namespace {
LaunchSpec self_spec(int nproc, std::vector<std::string>* lines) {
  LaunchSpec spec;  // program: /proc/self/exe, this test binary
  spec.args = {"test_dist", "--no-skip", "--test-case=launcher worker: rendezvous from the environment", "--minimal",
               "--no-intro", "--no-version", "--out=/dev/stderr"};  // doctest reports reach the [rank r] lines
  spec.nproc_per_node = nproc;
  spec.master_port = 0;
  spec.grace_s = 5;
  spec.log = [lines](std::string_view line) { lines->emplace_back(line); };
  return spec;
}
}  // namespace

TEST_CASE("launcher + rendezvous end to end: every worker receives rank 0's payload") {
  std::vector<std::string> lines;
  const LaunchResult r = run_local_workers(self_spec(3, &lines));
  CAPTURE(joined(lines));
  CAPTURE(r.message);
  REQUIRE(r.exit_code == 0);
  std::map<int, std::string> payload;
  for (const std::string& l : lines)
    for (int rank = 0; rank < 3; ++rank) {
      const std::string prefix = "[rank " + std::to_string(rank) + "] payload=";
      if (l.rfind(prefix, 0) == 0) payload[rank] = l.substr(prefix.size());
    }
  REQUIRE(payload.size() == 3);
  CHECK(payload[0].size() == 16 + std::string(" device=cuda:0").size());
  CHECK(payload[0].substr(0, 16) == payload[1].substr(0, 16));
  CHECK(payload[0].substr(0, 16) == payload[2].substr(0, 16));
  CHECK(payload[2].substr(16) == " device=cuda:2");
}

TEST_CASE("launcher + rendezvous end to end: a rank that dies before the rendezvous stops the run at once") {
  std::vector<std::string> lines;
  LaunchSpec spec = self_spec(3, &lines);
  spec.extra_env = {{"RDD_TEST_FAIL_RANK", "2"}};
  const auto t0 = Clock::now();
  const LaunchResult r = run_local_workers(spec);
  CAPTURE(joined(lines));
  CAPTURE(r.message);
  CHECK(seconds_since(t0) < 15);  // the others were waiting in a 30 s rendezvous
  CHECK(r.failed_rank == 2);
  CHECK(r.exit_code == 4);
  CHECK(r.message.find("rank 2 (local rank 2 on node 0) exited with status 4") != std::string::npos);
  CHECK(r.message.find("[rank 2] rank 2 fails on purpose") != std::string::npos);
}

TEST_CASE("launcher + rendezvous end to end: two nodes, node 0 launched, node 1's ranks as threads") {
  // Node 0 runs global ranks 0 and 1 as processes; ranks 2 and 3 (node 1) join from threads here.
  std::vector<std::string> lines;
  LaunchSpec spec = self_spec(2, &lines);
  spec.nnodes = 2;
  spec.node_rank = 0;
  spec.master_port = pick_free_port();
  std::vector<std::string> got(2), errors(2);
  std::vector<std::thread> node1;
  for (int i = 0; i < 2; ++i)
    node1.emplace_back([&, i] {
      try {
        WorkerEnv w;
        w.rank = 2 + i;
        w.world_size = 4;
        w.master_addr = "127.0.0.1";
        w.master_port = spec.master_port;
        Rendezvous rdzv(rendezvous_options(w, 30));
        got[size_t(i)] = rdzv.broadcast();
        rdzv.barrier();
      } catch (const std::exception& e) {
        errors[size_t(i)] = e.what();
      }
    });
  const LaunchResult r = run_local_workers(spec);
  for (auto& t : node1) t.join();
  CAPTURE(joined(lines));
  CAPTURE(r.message);
  REQUIRE(r.exit_code == 0);
  CHECK(errors[0] == "");
  CHECK(errors[1] == "");
  std::string rank0_payload;
  for (const std::string& l : lines)
    if (l.rfind("[rank 0] payload=", 0) == 0) rank0_payload = l.substr(17, 16);
  REQUIRE(rank0_payload.size() == 16);
  CHECK(got[0] == rank0_payload);
  CHECK(got[1] == rank0_payload);
  CHECK(std::count_if(lines.begin(), lines.end(),
                      [](const std::string& l) { return l.rfind("[rank 1] payload=", 0) == 0; }) == 1);
}

// ---- GPU: the real product path — rank 0's ncclUniqueId crosses the rendezvous into another process ----

// Worker (skipped in ordinary runs): two ranks rendezvous; rank 0's NCCL id reaches both; the first
// RDD_TEST_NCCL_WORLD ranks (1 on a one-GPU machine: NCCL refuses two ranks on one GPU) build an NCCL
// communicator from the id they received and all-reduce (rank + 1).
TEST_CASE("launcher worker: NCCL id through the rendezvous" * doctest::skip()) {
  const auto w = worker_env();
  REQUIRE(w.has_value());
  std::signal(SIGTERM, SIG_DFL);
  const char* nccl_world_env = std::getenv("RDD_TEST_NCCL_WORLD");
  REQUIRE(nccl_world_env != nullptr);
  const int nccl_world = std::atoi(nccl_world_env);
  Rendezvous rdzv(rendezvous_options(*w, 60));
  const std::string id = rdzv.broadcast(w->rank == 0 ? nccl_unique_id() : std::string());
  std::string hex;
  for (unsigned char c : id) {
    hex += "0123456789abcdef"[c >> 4];
    hex += "0123456789abcdef"[c & 15];
  }
  std::fprintf(stderr, "id=%s\n", hex.c_str());
  if (w->rank < nccl_world) {
    const Device dev = Device::parse(w->device);
    auto comm = make_nccl_communicator(id, w->rank, nccl_world, dev.index);
    Tensor t = Tensor::full({1000}, double(w->rank + 1), DType::f32, dev);
    comm->all_reduce_sum(t);
    const std::vector<float> got = t.to(Device::cpu()).to_vector<float>();
    const float want = float(nccl_world * (nccl_world + 1) / 2);
    CHECK(std::count(got.begin(), got.end(), want) == int64_t(got.size()));
    std::fprintf(stderr, "allreduce=%g\n", double(got[0]));
  }
  std::fflush(stderr);
  rdzv.barrier();
}

SILICON_TEST_CASE("launcher + rendezvous + NCCL: rank 0's unique id reaches every process and NCCL accepts it") {
  const int nccl_world = std::min(gpu_count(), 2);
  std::vector<std::string> lines;
  LaunchSpec spec = self_spec(2, &lines);
  spec.args[2] = "--test-case=launcher worker: NCCL id through the rendezvous";
  spec.extra_env = {{"RDD_TEST_NCCL_WORLD", std::to_string(nccl_world)}};
  spec.grace_s = 10;
  const LaunchResult r = run_local_workers(spec);
  CAPTURE(joined(lines));
  CAPTURE(r.message);
  REQUIRE(r.exit_code == 0);
  std::string id0, id1;
  int allreduce_lines = 0;
  const std::string want_sum = "allreduce=" + std::to_string(nccl_world * (nccl_world + 1) / 2);
  for (const std::string& l : lines) {
    if (l.rfind("[rank 0] id=", 0) == 0) id0 = l.substr(12);
    if (l.rfind("[rank 1] id=", 0) == 0) id1 = l.substr(12);
    if (l.find("] " + want_sum) != std::string::npos) ++allreduce_lines;
  }
  CHECK(id0.size() == 256);  // 128 bytes
  CHECK(id0 == id1);
  CHECK(id0.find_first_not_of('0') != std::string::npos);
  CHECK(allreduce_lines == nccl_world);
}
