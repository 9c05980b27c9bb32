#include "dist/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <set>

#include "dist/rendezvous.h"
#include "engine/error.h"

extern char** environ;

namespace rdd::dist {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kTailLines = 20;        // a worker's last stderr lines, repeated when it fails
constexpr size_t kMaxLineBytes = 1 << 16;  // a longer "line" is passed on in pieces

// ---- signals: the handlers only write the signal number into a pipe the event loop polls ----------

std::atomic<bool> g_launch_active{false};
int g_wake_write_fd = -1;
volatile sig_atomic_t g_signalled = 0;  // SIGINT/SIGTERM seen (stops spawning more workers)

void on_signal(int sig) {
  const int saved = errno;
  if (sig == SIGINT || sig == SIGTERM) g_signalled = 1;
  const char c = char(sig);
  [[maybe_unused]] ssize_t n = ::write(g_wake_write_fd, &c, 1);
  errno = saved;
}

// Installs the handlers for the lifetime of one launch and restores the previous ones.
class SignalScope {
 public:
  SignalScope() {
    int p[2];
    RDD_CHECK(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0, "launch: pipe2 failed: ", std::strerror(errno));
    read_fd = p[0];
    g_wake_write_fd = p[1];
    g_signalled = 0;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, &old_chld_);
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGCHLD, &old_chld_, nullptr);
    ::close(read_fd);
    ::close(g_wake_write_fd);
    g_wake_write_fd = -1;
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
  int read_fd = -1;

 private:
  struct sigaction old_int_ {}, old_term_ {}, old_chld_ {};
};

struct ActiveGuard {
  ActiveGuard() {
    RDD_CHECK(!g_launch_active.exchange(true), "launch: another launch is already running in this process");
  }
  ~ActiveGuard() { g_launch_active = false; }
};

// ---- workers ------------------------------------------------------------------------------------

struct Worker {
  int rank = 0, local_rank = 0;
  pid_t pid = -1;
  int err_fd = -1;           // read end of its stderr pipe; -1 once closed
  std::string partial;       // an unfinished line
  std::deque<std::string> tail;
  bool exited = false;
  int status = 0;            // from waitpid
  std::string spawn_error;   // exec failed: why
};

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGPIPE: return "SIGPIPE";
    case SIGTERM: return "SIGTERM";
    default: return "signal " + std::to_string(sig);
  }
}

bool failed(int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string describe_exit(const Worker& w) {
  if (!w.spawn_error.empty()) return "could not be started: " + w.spawn_error;
  if (WIFEXITED(w.status)) return "exited with status " + std::to_string(WEXITSTATUS(w.status));
  if (WIFSIGNALED(w.status)) {
    const int sig = WTERMSIG(w.status);
    return "was killed by signal " + std::to_string(sig) + " (" + signal_name(sig) + ")" +
           (WCOREDUMP(w.status) ? ", core dumped" : "");
  }
  return "ended with wait status " + std::to_string(w.status);
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

void validate(const LaunchSpec& s) {
  RDD_CHECK(!s.program.empty(), "launch: no program to start the workers with");
  RDD_CHECK(s.args.empty() || !s.args[0].empty(), "launch: the workers' arguments must start with argv[0]");
  RDD_CHECK(s.nproc_per_node >= 1, "launch: --gpus must be at least 1, got ", s.nproc_per_node);
  RDD_CHECK(s.nnodes >= 1, "launch: --nnodes must be at least 1, got ", s.nnodes);
  RDD_CHECK(s.node_rank >= 0 && s.node_rank < s.nnodes, "launch: --node-rank ", s.node_rank, " is outside 0..",
            s.nnodes - 1, " (--nnodes ", s.nnodes, ")");
  RDD_CHECK(s.master_port >= 0 && s.master_port <= 65535, "launch: --master-port ", s.master_port,
            " is not a TCP port (0..65535; 0 = any free port)");
  RDD_CHECK(s.master_port != 0 || s.nnodes == 1,
            "launch: --master-port 0 (pick a free port) works only with --nnodes 1: the other nodes must know the port");
  RDD_CHECK(!s.master_addr.empty(), "launch: --master-addr is empty");
  RDD_CHECK(s.grace_s >= 0 && std::isfinite(s.grace_s), "launch: the grace period must be >= 0 s, got ", s.grace_s);
  RDD_CHECK(s.interrupt_grace_s >= 0 && std::isfinite(s.interrupt_grace_s),
            "launch: the grace period after an interrupt must be >= 0 s, got ", s.interrupt_grace_s);
}

class Launch {
 public:
  Launch(const LaunchSpec& spec, int wake_fd) : spec_(spec), wake_fd_(wake_fd) {}
  ~Launch() {
    // Normally every worker is reaped by now. If run() was left by an exception (the log callback
    // threw, a pipe could not be made), leave no worker behind.
    for (Worker& w : workers_) {
      if (w.pid > 0 && !w.exited) {
        ::kill(-w.pid, SIGKILL);
        ::waitpid(w.pid, nullptr, 0);
      }
      if (w.err_fd >= 0) ::close(w.err_fd);
    }
  }

  LaunchResult run();

 private:
  void emit(std::string_view line) {
    if (spec_.log) spec_.log(line);
    else {
      std::string s(line);
      s += '\n';
      std::fwrite(s.data(), 1, s.size(), stderr);
      std::fflush(stderr);
    }
  }
  void spawn(Worker& w, int port);
  void read_output(Worker& w, bool at_eof_too);
  void line_from(Worker& w, std::string line);
  void signal_workers(int sig);
  void begin_stop(int sig, double grace_s);
  void handle_wake();
  void reap();

  const LaunchSpec& spec_;
  int wake_fd_;
  std::vector<std::string> args_;  // the workers' argv
  std::vector<Worker> workers_;
  LaunchResult result_;
  int world_ = 0;
  bool stopping_ = false, killed_ = false;
  int interrupts_ = 0;
  Clock::time_point kill_at_{};
  double stop_grace_s_ = 0;       // of the stop under way
  std::vector<int> needed_kill_;  // ranks still running when the grace period ended
  int stopped_count_ = 0;         // workers that were running when the stop began
};

void Launch::spawn(Worker& w, int port) {
  // Everything the child needs is prepared before fork: between fork and exec only async-signal-safe calls.
  std::vector<std::pair<std::string, std::string>> ours = {
      {"RDD_RANK", std::to_string(w.rank)},
      {"RDD_LOCAL_RANK", std::to_string(w.local_rank)},
      {"RDD_WORLD_SIZE", std::to_string(world_)},
      {"RDD_LOCAL_WORLD_SIZE", std::to_string(spec_.nproc_per_node)},
      {"RDD_NODE_RANK", std::to_string(spec_.node_rank)},
      {"RDD_MASTER_ADDR", spec_.master_addr},
      {"RDD_MASTER_PORT", std::to_string(port)},
      {"RDD_DEVICE", "cuda:" + std::to_string(w.local_rank)},
  };
  for (const auto& kv : spec_.extra_env) ours.push_back(kv);
  // CUDA numbers GPUs fastest-first unless told otherwise; in PCI order cuda:<local rank> is the GPU
  // nvidia-smi shows under that number (a user's own CUDA_DEVICE_ORDER wins).
  if (!std::getenv("CUDA_DEVICE_ORDER")) ours.push_back({"CUDA_DEVICE_ORDER", "PCI_BUS_ID"});
  std::set<std::string> replaced;
  for (const auto& kv : ours) replaced.insert(kv.first);
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry(*e);
    if (!replaced.count(entry.substr(0, entry.find('=')))) env.push_back(entry);
  }
  for (const auto& kv : ours) env.push_back(kv.first + "=" + kv.second);
  std::vector<char*> envp, argv;
  for (std::string& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (std::string& s : args_) argv.push_back(s.data());
  argv.push_back(nullptr);

  int err_pipe[2], exec_pipe[2];
  RDD_CHECK(::pipe2(err_pipe, O_CLOEXEC) == 0, "launch: pipe2 failed: ", std::strerror(errno));
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    fail("launch: pipe2 failed: ", std::strerror(e));
  }
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();
  const char* program = spec_.program.c_str();

  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the launcher's thread is gone: go too
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(err_pipe[1], 2);  // the copy on fd 2 is not close-on-exec
    ::execve(program, argv.data(), envp.data());
    const int e = errno;
    [[maybe_unused]] ssize_t n = ::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  const int fork_errno = errno;
  if (devnull >= 0) ::close(devnull);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  if (pid < 0) {
    ::close(err_pipe[0]);
    ::close(exec_pipe[0]);
    w.exited = true;
    w.status = 127 << 8;
    w.spawn_error = std::string("fork failed: ") + std::strerror(fork_errno);
    return;
  }
  ::setpgid(pid, pid);  // also here, so the group exists before we might signal it
  w.pid = pid;
  w.err_fd = err_pipe[0];
  ::fcntl(w.err_fd, F_SETFL, ::fcntl(w.err_fd, F_GETFL) | O_NONBLOCK);
  // The exec pipe closes on a successful exec; on failure it carries errno.
  int e = 0;
  ssize_t n;
  do n = ::read(exec_pipe[0], &e, sizeof e);
  while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == ssize_t(sizeof e))
    w.spawn_error = "cannot execute " + spec_.program + ": " + std::strerror(e);
}

void Launch::line_from(Worker& w, std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::string out = "[rank " + std::to_string(w.rank) + "] " + line;
  emit(out);
  w.tail.push_back(std::move(out));
  if (w.tail.size() > kTailLines) w.tail.pop_front();
}

void Launch::read_output(Worker& w, bool flush_partial_at_eof) {
  if (w.err_fd < 0) return;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(w.err_fd, buf, sizeof buf);
    if (n > 0) {
      w.partial.append(buf, size_t(n));
      size_t start = 0;
      for (size_t nl; (nl = w.partial.find('\n', start)) != std::string::npos; start = nl + 1)
        line_from(w, w.partial.substr(start, nl - start));
      w.partial.erase(0, start);
      while (w.partial.size() >= kMaxLineBytes) {
        line_from(w, w.partial.substr(0, kMaxLineBytes));
        w.partial.erase(0, kMaxLineBytes);
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // EOF (or an error): the worker and everything it started closed stderr.
    if (!w.partial.empty() && flush_partial_at_eof) line_from(w, std::move(w.partial));
    w.partial.clear();
    ::close(w.err_fd);
    w.err_fd = -1;
    return;
  }
}

void Launch::signal_workers(int sig) {
  for (Worker& w : workers_)
    if (w.pid > 0 && !w.exited) ::kill(-w.pid, sig);  // the worker's whole process group
}

void Launch::begin_stop(int sig, double grace_s) {
  if (stopping_) return;
  stopping_ = true;
  stop_grace_s_ = grace_s;
  for (const Worker& w : workers_)
    if (w.pid > 0 && !w.exited) ++stopped_count_;
  signal_workers(sig);
  kill_at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(grace_s));
}

void Launch::handle_wake() {
  char sigs[64];
  for (;;) {
    const ssize_t n = ::read(wake_fd_, sigs, sizeof sigs);
    if (n <= 0) return;
    for (ssize_t i = 0; i < n; ++i) {
      const int sig = sigs[i];
      if (sig != SIGINT && sig != SIGTERM) continue;  // SIGCHLD only wakes us up
      ++interrupts_;
      if (interrupts_ == 1) {
        if (result_.failed_rank < 0) {
          result_.interrupted = true;
          result_.exit_code = 128 + sig;
          result_.message = "rdd launch: interrupted by " + signal_name(sig) + "; passed it on to the workers";
        }
        if (!stopping_) begin_stop(sig, spec_.interrupt_grace_s);  // forward the user's signal itself
        else signal_workers(sig);
      } else if (!killed_) {
        emit("rdd launch: second " + signal_name(sig) + ": killing the workers");
        signal_workers(SIGKILL);
        killed_ = true;
      }
    }
  }
}

void Launch::reap() {
  for (Worker& w : workers_) {
    if (w.exited || w.pid <= 0) continue;
    int status = 0;
    const pid_t r = ::waitpid(w.pid, &status, WNOHANG);
    if (r < 0 && errno == ECHILD) status = 255 << 8;  // reaped by someone else: its status is lost
    else if (r != w.pid) continue;
    w.exited = true;
    w.status = status;
    if ((failed(status) || !w.spawn_error.empty()) && result_.failed_rank < 0 && !stopping_) {
      result_.failed_rank = w.rank;
      result_.exit_code = !w.spawn_error.empty() ? 127 : exit_code_of(status);
      ::kill(-w.pid, SIGKILL);  // anything the failed worker left in its group
      begin_stop(SIGTERM, spec_.grace_s);
    }
  }
}

LaunchResult Launch::run() {
  world_ = spec_.nnodes * spec_.nproc_per_node;
  args_ = spec_.args.empty() ? own_command_line() : spec_.args;
  RDD_CHECK(!args_.empty(), "launch: could not read this process's command line from /proc/self/cmdline");
  const int port = spec_.master_port != 0 ? spec_.master_port : pick_free_port(spec_.master_addr);
  workers_.resize(size_t(spec_.nproc_per_node));
  for (int l = 0; l < spec_.nproc_per_node; ++l) {
    workers_[size_t(l)].local_rank = l;
    workers_[size_t(l)].rank = spec_.node_rank * spec_.nproc_per_node + l;
  }
  for (Worker& w : workers_) {
    if (g_signalled || stopping_) break;  // interrupted while starting: start no more
    spawn(w, port);
    if (w.pid < 0) {  // fork failed: nothing to wait for
      result_.failed_rank = w.rank;
      result_.exit_code = 127;
      begin_stop(SIGTERM, spec_.grace_s);
    }
  }

  auto any_running = [&] {
    return std::any_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.pid > 0 && !w.exited; });
  };
  while (any_running()) {
    std::vector<pollfd> pfds{{wake_fd_, POLLIN, 0}};
    std::vector<Worker*> who;
    for (Worker& w : workers_)
      if (w.err_fd >= 0) {
        pfds.push_back({w.err_fd, POLLIN, 0});
        who.push_back(&w);
      }
    int timeout_ms = 100;  // a safety net: SIGCHLD wakes us up sooner
    if (stopping_ && !killed_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at_ - Clock::now()).count();
      timeout_ms = int(std::clamp<long long>(left, 0, timeout_ms));
    }
    ::poll(pfds.data(), pfds.size(), timeout_ms);
    handle_wake();
    for (size_t i = 1; i < pfds.size(); ++i)
      if (pfds[i].revents) read_output(*who[i - 1], /*flush_partial_at_eof=*/true);
    reap();
    if (stopping_ && !killed_ && Clock::now() >= kill_at_) {
      for (const Worker& w : workers_)
        if (w.pid > 0 && !w.exited) needed_kill_.push_back(w.rank);
      if (!needed_kill_.empty()) signal_workers(SIGKILL);
      killed_ = true;
    }
  }

  // Every worker is reaped; collect what is still in the pipes. A worker's leftover child may hold a
  // pipe open: wait at most a second for it.
  const auto drain_until = Clock::now() + std::chrono::seconds(1);
  for (;;) {
    std::vector<pollfd> pfds;
    std::vector<Worker*> who;
    for (Worker& w : workers_)
      if (w.err_fd >= 0) {
        pfds.push_back({w.err_fd, POLLIN, 0});
        who.push_back(&w);
      }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(drain_until - Clock::now()).count();
    if (pfds.empty() || left <= 0) break;
    ::poll(pfds.data(), pfds.size(), int(left));
    for (size_t i = 0; i < pfds.size(); ++i)
      if (pfds[i].revents) read_output(*who[i], true);
  }
  for (Worker& w : workers_) {
    if (!w.partial.empty()) line_from(w, std::move(w.partial));
    w.partial.clear();
  }

  if (result_.failed_rank >= 0) {
    const Worker& w = *std::find_if(workers_.begin(), workers_.end(),
                                    [&](const Worker& x) { return x.rank == result_.failed_rank; });
    std::string m = "rdd launch: rank " + std::to_string(w.rank) + " (local rank " + std::to_string(w.local_rank) +
                    " on node " + std::to_string(spec_.node_rank) + ") " + describe_exit(w);
    if (stopped_count_ > 0)
      m += "; stopped the other " + std::to_string(stopped_count_) + " worker" + (stopped_count_ == 1 ? "" : "s");
    if (!needed_kill_.empty())
      m += "; " + rank_list(needed_kill_) + " did not stop within " + format_seconds(stop_grace_s_) +
           " s of SIGTERM and " + (needed_kill_.size() == 1 ? "was" : "were") + " killed";
    if (w.tail.empty()) m += "\nrank " + std::to_string(w.rank) + " wrote nothing to stderr";
    else {
      m += "\nlast lines from rank " + std::to_string(w.rank) + ":";
      for (const std::string& l : w.tail) m += "\n  " + l;
    }
    result_.message = m;
    result_.interrupted = false;
  } else if (result_.interrupted) {
    result_.message += "; stopped " + std::to_string(stopped_count_) + " worker" + (stopped_count_ == 1 ? "" : "s");
    if (!needed_kill_.empty())
      result_.message += "; " + rank_list(needed_kill_) + " did not stop within " + format_seconds(stop_grace_s_) +
                         " s and " + (needed_kill_.size() == 1 ? "was" : "were") + " killed";
  }
  return result_;
}

int parse_int(const std::string& name, const std::string& value) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value.c_str(), &end, 10);
  RDD_CHECK(!value.empty() && end && *end == '\0' && errno == 0 && v >= 0 && v <= 1 << 30, "worker environment: ",
            name, "='", value, "' is not a non-negative integer");
  return int(v);
}

}  // namespace

LaunchResult run_local_workers(const LaunchSpec& spec) {
  validate(spec);
  ActiveGuard active;
  SignalScope signals;
  Launch launch(spec, signals.read_fd);
  return launch.run();
}

int launch_local_workers(const LaunchSpec& spec) {
  const LaunchResult r = run_local_workers(spec);
  if (!r.message.empty()) {
    size_t start = 0;
    for (;;) {
      const size_t nl = r.message.find('\n', start);
      const std::string_view line(r.message.data() + start,
                                  (nl == std::string::npos ? r.message.size() : nl) - start);
      if (spec.log) spec.log(line);
      else std::fprintf(stderr, "%.*s\n", int(line.size()), line.data());
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  return r.exit_code;
}

std::optional<WorkerEnv> worker_env_from(const std::function<std::optional<std::string>(const std::string&)>& get) {
  const auto rank = get("RDD_RANK");
  if (!rank) return std::nullopt;
  auto need = [&](const char* name) {
    auto v = get(name);
    RDD_CHECK(v.has_value(), "worker environment: RDD_RANK is set but ", name,
              " is not (workers are started by `rdd ... --gpus N`, which sets both)");
    return *v;
  };
  WorkerEnv w;
  w.rank = parse_int("RDD_RANK", *rank);
  w.world_size = parse_int("RDD_WORLD_SIZE", need("RDD_WORLD_SIZE"));
  w.local_rank = parse_int("RDD_LOCAL_RANK", need("RDD_LOCAL_RANK"));
  w.master_addr = need("RDD_MASTER_ADDR");
  w.master_port = parse_int("RDD_MASTER_PORT", need("RDD_MASTER_PORT"));
  const auto local_world = get("RDD_LOCAL_WORLD_SIZE");
  w.local_world_size = local_world ? parse_int("RDD_LOCAL_WORLD_SIZE", *local_world) : w.world_size;
  const auto node = get("RDD_NODE_RANK");
  w.node_rank = node ? parse_int("RDD_NODE_RANK", *node) : 0;
  const auto device = get("RDD_DEVICE");
  w.device = device ? *device : "cuda:" + std::to_string(w.local_rank);
  RDD_CHECK(w.world_size >= 1 && w.rank < w.world_size, "worker environment: RDD_RANK=", w.rank,
            " is outside RDD_WORLD_SIZE=", w.world_size);
  RDD_CHECK(w.local_world_size >= 1 && w.local_rank < w.local_world_size, "worker environment: RDD_LOCAL_RANK=",
            w.local_rank, " is outside RDD_LOCAL_WORLD_SIZE=", w.local_world_size);
  RDD_CHECK(!w.master_addr.empty(), "worker environment: RDD_MASTER_ADDR is empty");
  RDD_CHECK(w.master_port >= 1 && w.master_port <= 65535, "worker environment: RDD_MASTER_PORT=", w.master_port,
            " is not a TCP port");
  return w;
}

RendezvousOptions rendezvous_options(const WorkerEnv& worker, double timeout_s) {
  RendezvousOptions o;
  o.master_addr = worker.master_addr;
  o.master_port = worker.master_port;
  o.rank = worker.rank;
  o.world_size = worker.world_size;
  o.timeout_s = timeout_s;
  return o;
}

std::vector<std::string> own_command_line() {
  std::vector<std::string> args;
  std::FILE* f = std::fopen("/proc/self/cmdline", "rb");
  if (!f) return args;
  std::string all;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) all.append(buf, n);
  std::fclose(f);
  size_t start = 0;
  while (start < all.size()) {  // NUL-separated, NUL-terminated
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    args.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  return args;
}

WorkerSession join_worker_session(const WorkerEnv& w, const LaunchOptions& launch, const char* what) {
  RDD_CHECK(has_gpu(), "rank ", w.rank, ": multi-process ", what, " runs on GPUs (NCCL), and this machine has none (",
            no_gpu_reason(), ")");
  RDD_CHECK(w.local_rank < gpu_count(), "rank ", w.rank, ": local rank ", w.local_rank, " needs GPU ", w.local_rank,
            " but only ", gpu_count(), " GPU(s) are visible; lower --gpus");
  WorkerSession s;
  s.rendezvous = std::make_unique<Rendezvous>(rendezvous_options(w, launch.rendezvous_timeout_s));
  const std::string id = s.rendezvous->broadcast(w.rank == 0 ? nccl_unique_id() : std::string());
  s.device = Device::parse(w.device);
  s.comm = make_nccl_communicator(id, w.rank, w.world_size, s.device.index, launch.nccl_timeout_s);
  return s;
}

std::optional<WorkerEnv> worker_env() {
  return worker_env_from([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace rdd::dist
