// The run folder (--out) belongs to one run at a time.
//
//   RunFolder folder(opt.out, RunFolderMode::fresh);   // or resume / overwrite
//   ... folder.path() + "/metrics.jsonl" ...
//
// Opening it:
//   - creates the folder and checks that it is writable, naming --out;
//   - takes the lock file `rdd.lock` (flock, held until the RunFolder is destroyed or the process ends):
//     a second run into the folder is refused, naming the holder's pid and host; the lock of a process
//     that no longer runs (SIGKILL, a crash, a reboot) is taken over;
//   - refuses a folder that already holds a run (a checkpoint, weights, or iteration records) unless the
//     mode is resume or overwrite; overwrite removes the earlier run's outputs (run_output_names());
//   - removes temporary files left by writers that no longer run (`*.tmp`, `*.tmp.<pid>`).
// What it did (a lock taken over, files removed) is in notes(), for the caller to print.
#pragma once

#include <string>
#include <vector>

namespace rdd::train {

enum class RunFolderMode {
  fresh,     // the folder must not hold a run
  resume,    // --resume: continuing a run, into this folder or from another's checkpoint
  overwrite  // --overwrite: the earlier run's outputs are removed first
};

class RunFolder {
 public:
  RunFolder() = default;
  RunFolder(const std::string& path, RunFolderMode mode);
  ~RunFolder();
  RunFolder(RunFolder&& o) noexcept;
  RunFolder& operator=(RunFolder&& o) noexcept;
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;

  bool is_open() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  void release();
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> notes_;
};

// The files and folders a run writes into --out (what --overwrite removes; the data check's cache is
// kept: it stays valid).
const std::vector<std::string>& run_output_names();

// Which of the outputs that make a folder "hold a run" are present (empty: none).
std::vector<std::string> run_outputs_present(const std::string& path);

// Removes `*.tmp` and `*.tmp.<pid>` files of `dir` whose writer no longer runs; returns their names.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

}  // namespace rdd::train
