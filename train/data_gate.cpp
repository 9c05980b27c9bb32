#include "train/data_gate.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "data/dataset_check.h"
#include "engine/error.h"
#include "train/progress.h"
#include "train/signals.h"

namespace rdd::train {

namespace {

using Clock = std::chrono::steady_clock;

// Rank 0's bad indices to every rank: [count or −1 (the check failed), indices...] as f64 (what NCCL moves).
std::vector<size_t> share_bad(dist::Communicator* comm, Device device, const std::vector<size_t>* bad, bool failed) {
  if (!comm || comm->world_size() == 1) return bad ? *bad : std::vector<size_t>{};
  const bool root = comm->rank() == 0;
  Tensor count = Tensor::from_vector(std::vector<double>{root ? (failed ? -1.0 : double(bad->size())) : 0.0}, {1});
  count = count.to(device);
  comm->broadcast(count, 0);
  const double n = count.to(Device::cpu()).to_vector<double>()[0];
  comm->throw_if_failed();
  if (n < 0) {
    if (root) return {};  // rank 0 throws its own message
    fail("the data check on rank 0 failed (rank 0 names the samples)");
  }
  if (n == 0) return {};
  std::vector<double> v(size_t(n), 0.0);
  if (root)
    for (size_t i = 0; i < v.size(); ++i) v[i] = double((*bad)[i]);
  Tensor t = Tensor::from_vector(v, {int64_t(v.size())}).to(device);
  comm->broadcast(t, 0);
  std::vector<size_t> out;
  for (double d : t.to(Device::cpu()).to_vector<double>()) out.push_back(size_t(d));
  comm->throw_if_failed();
  return out;
}

}  // namespace

std::shared_ptr<data::Dataset> check_run_data(std::shared_ptr<data::Dataset> ds, const std::string& role,
                                              const DataGateOptions& o, dist::Communicator* comm, Device device) {
  const bool root = !comm || comm->rank() == 0;
  data::DataCheckResult r;
  std::string failure;
  if (root) {
    const bool tty = o.report && isatty(STDERR_FILENO) != 0;
    const auto t0 = Clock::now();
    auto last_print = t0;
    bool live = false, ended = false;
    data::DataCheckOptions co;
    co.threads = o.threads;
    co.cache_path = o.cache_path;
    co.cancelled = [] { return stop_requested() != 0; };
    co.progress = [&](size_t done, size_t total, size_t bad) {
      if (!o.report) return;
      const auto now = Clock::now();
      const bool end = done == total;
      if (end && ended) return;  // the check reports its end twice (the last sample, then the summary)
      ended = ended || end;
      if (!tty && !end && std::chrono::duration<double>(now - last_print).count() < 10) return;
      if (tty && !end && std::chrono::duration<double>(now - last_print).count() < 0.2) return;
      last_print = now;
      const double s = std::chrono::duration<double>(now - t0).count();
      char line[256];
      std::snprintf(line, sizeof line, "checking the %s data (%s %s): %zu/%zu samples, %zu bad, %s", role.c_str(),
                    ds->name.c_str(), ds->split.c_str(), done, total, bad, format_duration(s).c_str());
      if (tty) {
        std::fprintf(stderr, "\r%s\033[K", line);
        live = true;
      } else {
        std::fprintf(stderr, "%s\n", line);
      }
      std::fflush(stderr);
    };
    try {
      r = data::check_dataset(*ds, co);
    } catch (const std::exception&) {
      if (live) std::fprintf(stderr, "\n");
      share_bad(comm, device, nullptr, /*failed=*/true);
      throw;
    }
    if (live) std::fprintf(stderr, "\n");
    if (o.report && r.cached > 0)
      std::fprintf(stderr, "  (%zu of %zu samples known good or bad from %s)\n", r.cached, ds->size(), o.cache_path.c_str());
    if (!r.bad.empty()) {
      std::string list;
      for (size_t k = 0; k < r.problems.size(); ++k) {
        if (k == 20 && !o.skip_bad) {
          list += "\n  ... and " + std::to_string(r.problems.size() - 20) + " more";
          break;
        }
        list += "\n  " + r.problems[k];
      }
      if (!o.skip_bad) {
        failure = "the " + role + " data (" + ds->name + " " + ds->split + ", " + ds->root + ") has " +
                  std::to_string(r.bad.size()) + " bad sample" + (r.bad.size() == 1 ? "" : "s") +
                  ", found before the first step:" + list +
                  "\nfix or remove them, or pass --skip-bad-samples to train without them";
      } else {
        if (o.report)
          std::fprintf(stderr, "--skip-bad-samples: leaving out %zu bad %s sample%s of %zu:%s\n", r.bad.size(),
                       role.c_str(), r.bad.size() == 1 ? "" : "s", ds->size(), list.c_str());
        if (!o.bad_list_path.empty()) {
          std::ofstream f(o.bad_list_path, std::ios::app);
          for (const std::string& p : r.problems) f << role << "\t" << p << "\n";
          RDD_CHECK(f.good(), "cannot write ", o.bad_list_path);
        }
      }
    }
  }
  const std::vector<size_t> bad = share_bad(comm, device, &r.bad, !failure.empty());
  if (!failure.empty()) fail(failure);
  if (bad.empty()) return ds;
  auto kept = std::make_shared<data::Dataset>(data::without_samples(*ds, bad));
  RDD_CHECK(kept->size() > 0, "the ", role, " data: every sample is bad (", ds->size(), "); nothing to train on");
  return kept;
}

}  // namespace rdd::train
