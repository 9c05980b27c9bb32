// Collectives across data-parallel ranks: all-reduce, broadcast, barrier.
//
// The real one is NCCL (one process per GPU; NcclCommunicator). Two others exist:
//  - SoloCommunicator: world size 1; every collective is a no-op. The single-GPU and CPU path.
//  - LocalGroup: N emulated ranks inside ONE process (one thread per rank), for testing the
//    data-parallel math — gradient averaging, SyncBN, bucket layout — on machines without GPUs.
//    It is a test instrument, not a product path: it sums on the CPU in rank order (deterministic).
//
// Collectives are called by every rank with tensors of the same shape and dtype (f32 or f64; the
// local group also takes i64 for counters). For NCCL they are enqueued on the device's communication
// stream after the compute stream's pending work, and the compute stream waits for them before its
// next kernel — so callers see ordinary stream-ordered semantics.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/params.h"
#include "engine/tensor.h"

namespace rdd::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Whether the data-parallel machinery runs: gradient all-reduce, SyncBN, averaged loss terms, summed
  // confusion matrices. More than one rank, or NCCL even with one (so that `--gpus 1` measures what that
  // machinery costs against the plain single-process run).
  virtual bool data_parallel() const { return world_size() > 1; }
  virtual void all_reduce_sum(Tensor& t) = 0;  // in place: every rank ends with Σ over ranks
  virtual void broadcast(Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  // Every rank ends with the mean over ranks. Default: all_reduce_sum, then scale (CPU tensors);
  // NCCL overrides it with ncclAvg.
  virtual void all_reduce_mean(Tensor& t);
  // Starts the mean all-reduce of t WITHOUT making later compute wait for it (NCCL: enqueued on the
  // communication stream); wait_async() makes the compute stream wait for every one started since.
  // t must not be touched on the compute stream in between; the communicator keeps t's storage alive
  // until wait_async(). Default: synchronous.
  virtual void all_reduce_mean_async(Tensor& t) { all_reduce_mean(t); }
  virtual void wait_async() {}
  // Throws if a collective started so far may not have produced its result. NCCL: the communicator
  // was aborted (the watchdog's timeout, an asynchronous NCCL error, a CUDA error), which leaves the
  // aborted collectives' outputs undefined. Every collective already throws once that happened, but
  // a host read (to_vector, item) of a result does not: call this after reading one.
  virtual void throw_if_failed() {}
};

class SoloCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(Tensor&) override {}
  void broadcast(Tensor&, int root) override;
  void barrier() override {}
};

// N ranks in one process. Make the group, hand rank(r) to thread r; every rank must call the same
// collectives in the same order (as with NCCL). A rank that throws poisons the group: the others'
// pending and later collectives throw too, instead of waiting forever.
class LocalGroup {
 public:
  explicit LocalGroup(int world_size);
  std::unique_ptr<Communicator> rank(int r);
  int world_size() const { return world_; }

 private:
  friend class LocalCommunicator;
  // One collective round: every rank deposits its tensor; the last to arrive combines; all copy out.
  void collective(int rank, Tensor& t, int op, int root);
  void poison(const std::string& why);

  int world_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Tensor*> slots_;
  int arrived_ = 0, departed_ = 0;
  uint64_t generation_ = 0;
  Tensor result_;
  std::string poisoned_;
};

// NCCL (CUDA builds). `unique_id` is the 128-byte ncclUniqueId made by rank 0 (nccl_unique_id()) and
// handed to every rank by the launcher's rendezvous.
std::string nccl_unique_id();
//
// No rank waits forever for a dead or hung peer (`timeout_s` is --nccl-timeout):
//  - Creation fails with an rdd::Error when not every rank has joined within `timeout_s`.
//  - A watchdog thread polls every second and aborts the communicator on an asynchronous NCCL error
//    (a peer's network failure), on a CUDA error on the communication stream, or when a collective
//    has been pending (enqueueing or running) longer than `timeout_s`. The stuck kernels return;
//    every later collective, wait_async(), barrier() and throw_if_failed() on this rank throws an
//    rdd::Error with the reason ("NCCL communicator aborted by the watchdog after N s: ..."), the
//    worker exits non-zero and the launcher stops the others.
inline constexpr double kDefaultNcclTimeoutS = 1800;
std::unique_ptr<Communicator> make_nccl_communicator(const std::string& unique_id, int rank, int world_size,
                                                     int device, double timeout_s = kDefaultNcclTimeoutS);

namespace detail {
// The NCCL watchdog's decision as a pure function (tested without a GPU). One poll's observations:
struct NcclWatchPoll {
  enum Collective {
    kIdle,        // nothing pending
    kEnqueueing,  // the latest collective's NCCL call has not returned (or is still ncclInProgress)
    kRunning,     // enqueued; the stream event after it has not completed
    kDone,        // that event completed: everything enqueued so far finished
    kCudaError,   // querying that event failed (e.g. a sticky illegal-address error)
  };
  Collective collective = kIdle;
  double pending_s = 0;    // seconds since the latest collective began enqueueing
  std::string cuda_error;  // with kCudaError: the CUDA error's name and text
  std::string nccl_error;  // ncclCommGetAsyncError's error; "" for ncclSuccess and ncclInProgress
  double timeout_s = 0;    // --nccl-timeout
};
// "" to keep waiting; otherwise why to abort: "NCCL communicator aborted by the watchdog after N s: ...".
std::string nccl_watchdog_verdict(const NcclWatchPoll& poll);
}  // namespace detail

// Gradient all-reduce buckets: contiguous ranges of the flat gradient buffer, in REVERSE registration
// order (backward produces the last layers' gradients first, so the first bucket is ready first).
// Each parameter lies in exactly one bucket; buckets cover [0, padded_count) exactly once. A bucket
// closes when it reaches `bucket_bytes` (a parameter is never split).
struct GradBucket {
  int64_t begin = 0, end = 0;            // element range in the flat buffers
  std::vector<std::string> parameters;   // names, in the order their gradients become final
};
std::vector<GradBucket> make_grad_buckets(const ParamStore& store, size_t bucket_bytes);

// Average the gradients of a store over ranks, bucket by bucket, after the backward.
void all_reduce_gradients(Communicator& comm, ParamStore& store, const std::vector<GradBucket>& buckets);

// The same, overlapped with the backward: feed it the model's gradient-ready offsets (every gradient
// at offsets ≥ flat_begin is final); each bucket's all-reduce starts as soon as it is complete.
//   reducer.begin_step(); model.backward(...) /* calls reducer.ready(offset) */; reducer.finish();
class OverlappedGradReducer {
 public:
  OverlappedGradReducer(Communicator& comm, ParamStore& store, std::vector<GradBucket> buckets);
  void begin_step();
  void ready(int64_t flat_begin);  // launches every bucket lying entirely at or above flat_begin
  void finish();                   // launches the rest and waits for all
  int64_t launched_during_backward() const { return launched_early_; }  // for tests and logs

 private:
  Communicator& comm_;
  ParamStore& store_;
  std::vector<GradBucket> buckets_;
  size_t next_ = 0;
  int64_t launched_early_ = 0;
  void launch(size_t i);
};

}  // namespace rdd::dist
