#include "train/run_folder.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/error.h"

namespace rdd::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLockName = "rdd.lock";

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool process_alive(long pid) {
  if (pid <= 0) return false;
  return ::kill(pid_t(pid), 0) == 0 || errno == EPERM;
}

std::string read_all(int fd) {
  std::string s;
  char buf[4096];
  ::lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) s.append(buf, size_t(n));
  return s;
}

// The holder recorded in a lock file: {"pid", "host", "started"} (anything unreadable: empty).
nlohmann::json holder_of(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : nlohmann::json::object();
}

std::string describe_holder(const nlohmann::json& h) {
  std::ostringstream os;
  os << "pid " << (h.contains("pid") ? h["pid"].dump() : "?") << " on host "
     << (h.contains("host") && h["host"].is_string() ? h["host"].get<std::string>() : "?");
  if (h.contains("started") && h["started"].is_string()) os << " (started " << h["started"].get<std::string>() << ")";
  return os.str();
}

void prepare_writable(const std::string& out) {
  std::error_code ec;
  fs::create_directories(out, ec);
  RDD_CHECK(!ec && fs::is_directory(out, ec), "--out ", out, ": cannot create the folder",
            ec ? " (" + ec.message() + ")" : std::string());
  const std::string probe = out + "/.rdd-write-test." + std::to_string(::getpid());
  {
    std::ofstream f(probe);
    RDD_CHECK(f.good(), "--out ", out, ": the folder is not writable");
  }
  fs::remove(probe, ec);
}

// "name.tmp" → 0 (no pid), "name.tmp.<pid>" → pid; anything else → -1.
long temporary_writer(const std::string& name) {
  const size_t at = name.rfind(".tmp");
  if (at == std::string::npos || at == 0) return -1;
  const std::string rest = name.substr(at + 4);
  if (rest.empty()) return 0;
  if (rest[0] != '.' || rest.size() < 2 || rest.size() > 12) return -1;
  for (size_t i = 1; i < rest.size(); ++i)
    if (rest[i] < '0' || rest[i] > '9') return -1;
  return std::stol(rest.substr(1));
}

}  // namespace

const std::vector<std::string>& run_output_names() {
  static const std::vector<std::string> names = {"config.json",       "metrics.jsonl",   "checkpoint.safetensors",
                                                 "weights.safetensors", "best.safetensors", "eval.json",
                                                 "bad_samples.txt",   "tb"};
  return names;
}

std::vector<std::string> run_outputs_present(const std::string& path) {
  std::vector<std::string> present;
  std::error_code ec;
  for (const char* name : {"checkpoint.safetensors", "weights.safetensors", "best.safetensors", "eval.json"})
    if (fs::exists(fs::path(path) / name, ec)) present.push_back(name);
  const fs::path metrics = fs::path(path) / "metrics.jsonl";
  if (fs::is_regular_file(metrics, ec) && fs::file_size(metrics, ec) > 0 && !ec) present.push_back("metrics.jsonl");
  return present;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (!it->is_regular_file(e2)) continue;
    const std::string name = it->path().filename().string();
    const long pid = temporary_writer(name);
    if (pid < 0) continue;
    if (pid > 0 && (pid == long(::getpid()) || process_alive(pid))) continue;  // a live writer's
    if (fs::remove(it->path(), e2)) removed.push_back(name);
  }
  return removed;
}

RunFolder::RunFolder(const std::string& path, RunFolderMode mode) : path_(path) {
  prepare_writable(path);
  const std::string lock_path = file(kLockName);
  // Take the lock; a file replaced under us (its holder unlinked it on exit between our open and our
  // flock) is opened again.
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    RDD_CHECK(fd >= 0, "--out ", path, ": cannot create the lock file ", lock_path, ": ", std::strerror(errno));
    const std::string previous = read_all(fd);
    const nlohmann::json holder = holder_of(previous);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      if (e == EWOULDBLOCK) {
        ::close(fd);
        fail("--out ", path, " is in use by another run: ", describe_holder(holder),
             " holds its lock file ", lock_path, ". Wait for that run to end, stop it, or choose another --out");
      }
      // No flock on this file system: judge by the recorded pid (same host only).
      const long pid = holder.contains("pid") && holder["pid"].is_number_integer() ? holder["pid"].get<long>() : 0;
      const std::string host = holder.contains("host") && holder["host"].is_string() ? holder["host"].get<std::string>() : "";
      if (pid > 0 && (host != host_name() || process_alive(pid))) {
        ::close(fd);
        fail("--out ", path, " is in use by another run: ", describe_holder(holder), " holds its lock file ", lock_path,
             " (this file system has no flock: if that run is gone, delete the lock file)");
      }
    }
    struct stat by_fd {}, by_path {};
    if (attempt < 5 && (::fstat(fd, &by_fd) != 0 || ::stat(lock_path.c_str(), &by_path) != 0 ||
                        by_fd.st_ino != by_path.st_ino || by_fd.st_dev != by_path.st_dev)) {
      ::close(fd);
      continue;
    }
    fd_ = fd;
    if (!holder.empty())
      notes_.push_back("took over the lock of " + describe_holder(holder) + ", which no longer runs");
    break;
  }
  const std::string text =
      nlohmann::json{{"pid", ::getpid()}, {"host", host_name()}, {"started", utc_now()}}.dump() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != ssize_t(text.size())) {
    const int e = errno;
    release();
    fail("--out ", path, ": cannot write the lock file ", lock_path, ": ", std::strerror(e));
  }

  const std::vector<std::string> present = run_outputs_present(path);
  if (!present.empty() && mode == RunFolderMode::fresh) {
    std::string list;
    for (const std::string& p : present) list += (list.empty() ? "" : ", ") + p;
    release();
    fail("--out ", path, " already holds a run (", list, "). Continue it with --resume ", path,
         "/checkpoint.safetensors, start it again with --overwrite (removes its outputs), or choose another --out");
  }
  if (mode == RunFolderMode::overwrite) {
    std::vector<std::string> removed;
    for (const std::string& name : run_output_names()) {
      std::error_code ec;
      if (fs::remove_all(fs::path(path) / name, ec) > 0) removed.push_back(name);
    }
    if (!removed.empty()) {
      std::string list;
      for (const std::string& r : removed) list += (list.empty() ? "" : ", ") + r;
      notes_.push_back("--overwrite: removed the earlier run's " + list);
    }
  }
  const std::vector<std::string> stale = remove_stale_temporaries(path);
  if (!stale.empty()) {
    std::string list;
    for (const std::string& s : stale) list += (list.empty() ? "" : ", ") + s;
    notes_.push_back("removed " + std::to_string(stale.size()) + " temporary file" + (stale.size() == 1 ? "" : "s") +
                     " left by a writer that no longer runs: " + list);
  }
}

void RunFolder::release() {
  if (fd_ < 0) return;
  ::unlink(file(kLockName).c_str());  // while still holding it: whoever opens the name next gets a new file
  ::close(fd_);
  fd_ = -1;
}

RunFolder::~RunFolder() { release(); }

RunFolder::RunFolder(RunFolder&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_), notes_(std::move(o.notes_)) {
  o.fd_ = -1;
}

RunFolder& RunFolder::operator=(RunFolder&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    notes_ = std::move(o.notes_);
    o.fd_ = -1;
  }
  return *this;
}

}  // namespace rdd::train
