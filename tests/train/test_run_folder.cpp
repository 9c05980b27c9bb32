#include "train/run_folder.h"

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "harness.h"
#include "train/signals.h"

using namespace rdd;
using namespace rdd::train;
namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p);
  f << text;
}

// A pid that no longer runs: a child that exited and was reaped.
long dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return long(pid);
}

}  // namespace

TEST_CASE("run folder: a second run into a locked folder is refused, naming the holder's pid and host") {
  const std::string dir = test::temp_dir("run_lock") + "/run";
  {
    RunFolder first(dir, RunFolderMode::fresh);
    CHECK(first.is_open());
    CHECK(fs::exists(dir + "/rdd.lock"));
    const std::string msg = test::error_message([&] { RunFolder second(dir, RunFolderMode::resume); });
    CHECK(msg.find("is in use by another run") != std::string::npos);
    CHECK(msg.find("pid " + std::to_string(::getpid())) != std::string::npos);
    CHECK(msg.find("on host ") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(dir + "/rdd.lock"));  // released on exit
  RunFolder again(dir, RunFolderMode::fresh);   // and free for the next run
  CHECK(again.notes().empty());
}

TEST_CASE("run folder: the lock of a process that died (SIGKILL) is taken over, with a note") {
  const std::string dir = test::temp_dir("run_stale_lock");
  write_file(dir + "/rdd.lock", "{\"pid\": " + std::to_string(dead_pid()) + ", \"host\": \"gone\"}\n");
  RunFolder f(dir, RunFolderMode::fresh);
  REQUIRE(f.notes().size() == 1);
  CHECK(f.notes()[0].find("took over the lock") != std::string::npos);
}

TEST_CASE("run folder: one that holds a run is refused unless --resume or --overwrite") {
  const std::string dir = test::temp_dir("run_exists");
  write_file(dir + "/metrics.jsonl", "{\"iter\":1}\n");
  write_file(dir + "/checkpoint.safetensors", "x");
  write_file(dir + "/data_check.json", "{}");
  fs::create_directories(dir + "/tb");
  write_file(dir + "/tb/events.out.tfevents.1", "x");
  const std::string msg = test::error_message([&] { RunFolder f(dir, RunFolderMode::fresh); });
  CHECK(msg.find("already holds a run (checkpoint.safetensors, metrics.jsonl)") != std::string::npos);
  CHECK(msg.find("--resume " + dir + "/checkpoint.safetensors") != std::string::npos);
  CHECK(msg.find("--overwrite") != std::string::npos);
  CHECK(fs::exists(dir + "/metrics.jsonl"));  // refused: nothing touched
  CHECK_FALSE(fs::exists(dir + "/rdd.lock"));
  { RunFolder resumed(dir, RunFolderMode::resume); }
  CHECK(fs::exists(dir + "/metrics.jsonl"));
  RunFolder over(dir, RunFolderMode::overwrite);
  CHECK_FALSE(fs::exists(dir + "/metrics.jsonl"));
  CHECK_FALSE(fs::exists(dir + "/checkpoint.safetensors"));
  CHECK_FALSE(fs::exists(dir + "/tb"));
  CHECK(fs::exists(dir + "/data_check.json"));  // the data check's cache stays valid
  REQUIRE(over.notes().size() == 1);
  CHECK(over.notes()[0].find("removed the earlier run's") != std::string::npos);
  // An empty metrics.jsonl (a run that failed before its first iteration) is not a run.
  const std::string empty = test::temp_dir("run_empty_metrics");
  write_file(empty + "/metrics.jsonl", "");
  CHECK_NOTHROW(RunFolder(empty, RunFolderMode::fresh));
}

TEST_CASE("run folder: temporaries of dead writers are removed, a live writer's are kept") {
  const std::string dir = test::temp_dir("run_tmp");
  const std::string dead = "checkpoint.safetensors.tmp." + std::to_string(dead_pid());
  const std::string live = "checkpoint.safetensors.tmp." + std::to_string(::getppid());  // our parent runs
  write_file(dir + "/" + dead, "x");
  write_file(dir + "/" + live, "x");
  write_file(dir + "/eval.json.tmp", "x");
  write_file(dir + "/notes.tmp.txt", "x");  // not a temporary by the naming rule
  const std::vector<std::string> removed = remove_stale_temporaries(dir);
  CHECK(removed.size() == 2);
  CHECK_FALSE(fs::exists(dir + "/" + dead));
  CHECK_FALSE(fs::exists(dir + "/eval.json.tmp"));
  CHECK(fs::exists(dir + "/" + live));
  CHECK(fs::exists(dir + "/notes.tmp.txt"));
}

TEST_CASE("run folder: --out that cannot be a folder is refused naming it") {
  const std::string dir = test::temp_dir("run_file");
  write_file(dir + "/a_file", "x");
  CHECK(test::error_message([&] { RunFolder f(dir + "/a_file/run", RunFolderMode::fresh); })
            .find("--out " + dir + "/a_file/run") != std::string::npos);
}

TEST_CASE("stop signals: SIGTERM and SIGINT are recorded while the scope lives, not acted on") {
  clear_stop();
  struct sigaction before {};
  sigaction(SIGTERM, nullptr, &before);  // doctest's own crash handler
  {
    StopSignals scope;
    CHECK(stop_requested() == 0);
    ::raise(SIGTERM);  // would end the test binary without the handler
    CHECK(stop_requested() == SIGTERM);
    CHECK(signal_name(stop_requested()) == "SIGTERM");
  }
  clear_stop();
  {
    StopSignals scope;
    StopSignals nested;
    ::raise(SIGINT);
    CHECK(stop_requested() == SIGINT);
  }
  clear_stop();
  request_stop(SIGTERM);
  request_stop(SIGINT);  // the first one is kept
  CHECK(stop_requested() == SIGTERM);
  clear_stop();
  struct sigaction now {};
  sigaction(SIGTERM, nullptr, &now);
  CHECK((now.sa_handler == before.sa_handler));  // restored after the outermost scope
}

TEST_CASE("stop signals: a second signal ends the process at once") {
  const pid_t pid = ::fork();
  if (pid == 0) {
    clear_stop();
    StopSignals scope;
    ::raise(SIGTERM);
    ::raise(SIGTERM);
    ::_exit(0);  // not reached
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
}
