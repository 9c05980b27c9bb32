// The prefetching loader: worker threads decode and augment samples into pinned host batches ahead
// of the consumer (a bounded queue of `prefetch` batches), in the order of an iteration-based sampler.
// In training every worker takes single images, so all workers help fill the batches in the window.
//
//   auto ds = std::make_shared<Dataset>(open_dataset(spec));
//   LoaderConfig lc; lc.batch_size = 8; lc.workers = 4; lc.seed = 1; lc.rank = r; lc.world = w;
//   lc.start_iteration = checkpoint.loader_position;                 // resume
//   Loader loader(ds, augment_preset("cirkd", 512, 1024), lc);
//   Batch b;
//   while (loader.next(b)) { upload(b.images, b.labels); loader.recycle(std::move(b)); }
//
// Sampling (train): like the reference's distributed sampler + IterationBasedBatchSampler, the
// dataset list is repeated epoch after epoch, each epoch a Philox permutation keyed by (seed, epoch),
// padded to a multiple of `world` by repeating its head; rank r takes positions r, r + world, ... of
// each epoch, so ranks never overlap within an epoch (apart from the padding when n % world != 0).
// Rank r's k-th sample is a pure function of (seed, n, world, r, k), and so is its augmentation
// (Philox keyed by (seed, global slot of the sample), the slot being unique per epoch and position).
// A loader started at `start_iteration = i` therefore yields exactly the batches i, i+1, ... that an
// uninterrupted run would have seen, whatever the number of workers.
//
// Eval (`train = false`): each rank's shard (positions r, r + world, ...) once, in order, with the
// evaluation transform (whole image, normalisation only); batches need equal image sizes.
//
// Errors in a worker (a missing file, a corrupt image, a bad label id) are re-thrown by next() when the
// consumer reaches the batch that hit them, naming the file and the problem.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "engine/tensor.h"

namespace rdd::data {

// The iteration-based sampler: which dataset index is rank r's k-th sample.
class SampleOrder {
 public:
  SampleOrder(size_t dataset_size, uint64_t seed, int rank, int world, bool shuffle);
  // Samples per epoch for this rank: ceil(n / world) when shuffling (padded), else this rank's shard size.
  int64_t per_rank_epoch() const { return per_rank_; }
  // Rank's k-th sample (k ≥ 0; shuffling repeats epochs forever). `slot` receives its global slot:
  // epoch · padded_n + position in the padded epoch (unique across ranks and epochs).
  size_t index(int64_t k, uint64_t* slot = nullptr) const;
  // The permutation of one epoch (tests).
  std::vector<uint32_t> permutation(int64_t epoch) const;

 private:
  size_t n_;
  uint64_t seed_;
  int rank_, world_;
  bool shuffle_;
  int64_t per_rank_, padded_;
  mutable std::mutex mu_;
  mutable std::map<int64_t, std::shared_ptr<const std::vector<uint32_t>>> perms_;  // a few recent epochs
};

struct LoaderConfig {
  int batch_size = 8;            // per rank
  int workers = 4;               // decoding/augmenting threads (≥ 1)
  int prefetch = 4;              // batches produced ahead of the consumer (≥ 1)
  uint64_t seed = 1;
  int rank = 0, world = 1;
  int64_t start_iteration = 0;   // batches already consumed (resume position)
  int64_t max_iterations = 0;    // train: the stream ends at this batch index, absolute (0: never)
  bool train = true;             // augmentation + shuffling, or the eval transform over the shard
  bool cache = false;            // keep decoded samples in memory
  size_t cache_limit_bytes = 0;  // 0: no limit; otherwise samples beyond it are not cached
  bool pinned = true;            // page-locked batches (ordinary host memory without a GPU)
  Device device = Device::cpu(); // where the batches go: the workers make this GPU current (pinned memory)
};

struct Batch {
  int64_t iteration = -1;        // index of this batch in the rank's stream (0-based)
  Tensor images;                 // (N, 3, H, W) f32, normalised
  Tensor labels;                 // (N, H, W) i32, ignore −1
  std::vector<int64_t> indices;  // dataset index of each image
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, AugmentConfig augment, LoaderConfig config);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch; false when the stream is over (eval: end of shard; train: max_iterations).
  bool next(Batch& out);
  // Hands a consumed batch's buffers back for reuse (optional). Waits for config.device first when the
  // buffers are pinned, so asynchronous copies from them are done.
  void recycle(Batch&& b);

  // Batches consumed so far, counting start_iteration: the position to store in a checkpoint.
  int64_t position() const;
  int64_t total_batches() const { return end_; }  // −1: unbounded
  const SampleOrder& order() const { return order_; }
  size_t cached_samples() const;
  size_t cached_bytes() const;

 private:
  struct Slot {  // a batch being built or ready
    Batch batch;
    std::vector<uint64_t> sample_slots;  // augmentation stream of each image
    int64_t remaining = -1;              // work units still running; 0: ready
    std::string error;                   // the first failure, re-thrown by next()
  };
  void worker_main();
  void build_eval(int64_t iteration, Batch& b);
  void allocate(Batch& b, int64_t count, int64_t h, int64_t w) const;
  std::shared_ptr<const Sample> sample(size_t index);

  std::shared_ptr<const Dataset> ds_;
  AugmentConfig aug_;
  LoaderConfig cfg_;
  SampleOrder order_;
  int64_t end_ = -1;  // one past the last batch, −1 unbounded

  mutable std::mutex mu_;
  std::condition_variable cv_work_, cv_ready_;
  bool stop_ = false;
  int64_t next_it_ = 0, next_j_ = 0;  // the next work unit to claim (batch, image)
  int64_t consumed_ = 0;
  std::map<int64_t, Slot> slots_;
  std::vector<Batch> free_;
  std::vector<std::thread> threads_;

  mutable std::mutex cache_mu_;
  std::map<size_t, std::shared_ptr<const Sample>> cache_;
  size_t cache_bytes_ = 0;
};

}  // namespace rdd::data
