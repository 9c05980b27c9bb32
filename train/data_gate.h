// The data a run reads, checked before its first step (data/dataset_check.h), with a progress line on
// stderr: every sample of a split, on `threads` threads, cached in the run folder so a resume does not
// pay again. Bad samples stop the run before it starts, listed by file and problem — or, with
// skip_bad, are dropped, listed on stderr and in the run folder's bad_samples.txt.
//
// With several ranks, rank 0 checks (and writes the cache) and broadcasts the bad samples' indices, so
// every rank drops the same ones.
#pragma once

#include <memory>
#include <string>

#include "data/dataset.h"
#include "dist/communicator.h"
#include "engine/device.h"

namespace rdd::train {

struct DataGateOptions {
  int threads = 4;
  bool skip_bad = false;     // --skip-bad-samples
  std::string cache_path;    // "<out>/data_check.json"; "" = no cache
  std::string bad_list_path; // "<out>/bad_samples.txt"; "" = not written
  bool report = true;        // this rank prints (rank 0)
};

// `role` names the split in messages ("training", "validation"). Returns the dataset to use.
std::shared_ptr<data::Dataset> check_run_data(std::shared_ptr<data::Dataset> ds, const std::string& role,
                                              const DataGateOptions& options, dist::Communicator* comm, Device device);

}  // namespace rdd::train
