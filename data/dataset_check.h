// Checking a dataset before training on it, and naming it independently of where it lies.
//
//   DataCheckOptions o; o.threads = 4; o.cache_path = out + "/data_check.json"; o.progress = ...;
//   DataCheckResult r = check_dataset(ds, o);         // every sample, in parallel
//   if (!r.bad.empty()) ds = without_samples(ds, r.bad);   // --skip-bad-samples
//   nlohmann::json id = dataset_identity(ds);         // {name, split, samples, files_hash}
//
// The check reads what is cheap and finds what stops a run later: each image's header (PNG IHDR / JPEG
// frame header: format and size within rdd's limits) and its end (a PNG's IEND chunk, a JPEG's
// end-of-image marker: a truncated file), and each label map in full (it is small: 8-bit PNG) — decoded,
// its ids checked against the dataset's mapping, its size against the image's. The messages are the
// loader's own (data/image.h, data/dataset.h), naming the file.
//
// A cache (a JSON file the caller names) remembers each sample's result by the files' paths relative to
// the dataset's folder, sizes and modification times, so a resumed run (or a moved dataset) does not pay
// for the check again; a file that changed is checked again.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace rdd::data {

struct DataCheckOptions {
  int threads = 4;
  std::string cache_path;  // "" = no cache
  // Called from the checking threads (serialised), about every 1% and at the end: samples done, of total,
  // bad so far.
  std::function<void(size_t done, size_t total, size_t bad)> progress;
  // Polled between samples; true ends the check early with an rdd::Error ("interrupted").
  std::function<bool()> cancelled;
};

struct DataCheckResult {
  std::vector<size_t> bad;            // sample indices, ascending
  std::vector<std::string> problems;  // one message per bad sample, same order
  size_t checked = 0;                 // samples read this time
  size_t cached = 0;                  // samples whose result came from the cache
};

// Checks every sample of `ds` (see above). Throws only for what is not a sample's problem (a cache file
// that cannot be written; an interruption).
DataCheckResult check_dataset(const Dataset& ds, const DataCheckOptions& options);

// One sample's check (the same as check_dataset's): throws rdd::Error naming the file and the problem.
void check_sample(const Dataset& ds, size_t index);

// `ds` without the samples at `indices`.
Dataset without_samples(const Dataset& ds, const std::vector<size_t>& indices);

// The folder the dataset's paths are relative to: --data-root, or a list file's folder.
std::string dataset_base(const Dataset& ds);

// What a dataset is, wherever it lies: {"name", "split", "samples", "files_hash"} with the hash (FNV-1a
// 64, hex) over the samples' "image label" paths relative to dataset_base(ds), in order.
nlohmann::json dataset_identity(const Dataset& ds);

}  // namespace rdd::data
