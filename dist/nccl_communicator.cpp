// The NCCL communicator: one process per GPU, collectives on the device's communication stream.
//
// Failure handling follows NCCL's rules (NCCL user guide: "Fault Tolerance", "Thread Safety",
// ncclCommGetAsyncError):
//  - The communicator is nonblocking (ncclConfig_t::blocking = 0). "In order to abort NCCL
//    communicators safely, NCCL requires applications to set communicators as nonblocking": a
//    blocking NCCL call (the init, or the first collective's connection setup) can wait forever for a
//    dead peer and cannot be aborted. A nonblocking call returns ncclInProgress instead, and the
//    caller polls ncclCommGetAsyncError until the state leaves ncclInProgress "before calling another
//    NCCL function" and before issuing CUDA work on the NCCL stream.
//  - Only one thread may operate a communicator at a time, and ncclCommAbort must not run while
//    another thread is inside an NCCL call on it: comm_mu_ serialises every NCCL call (the main
//    thread's enqueues and polls, the watchdog's polls and its abort). It is never held while waiting
//    for the GPU or for a peer, so the watchdog can always get it.
//  - On an error or a timeout the communicator is aborted ("nothing can be assumed about the
//    completion or correctness of operations enqueued on that communicator"), comm_ becomes null, and
//    every later entry point throws the reason.
// NCCL calls that may return ncclInProgress are checked by settle(), not RDD_NCCL_CHECK (which would
// take ncclInProgress for a failure).
#include "dist/communicator.h"

#include <cmath>

#if RDD_WITH_CUDA && !RDD_CUDA_EMULATED
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "engine/cuda_check.h"
#include "engine/cuda_context.h"
#endif

namespace rdd::dist {

namespace detail {
std::string nccl_watchdog_verdict(const NcclWatchPoll& poll) {
  std::string reason;
  if (poll.collective == NcclWatchPoll::kCudaError) {
    // Sticky CUDA errors never clear: waiting longer would only report them later as a peer hang.
    reason = "a CUDA error on the communication stream: " + poll.cuda_error;
  } else if (!poll.nccl_error.empty()) {
    reason = "NCCL reported an asynchronous error: " + poll.nccl_error;
  } else if ((poll.collective == NcclWatchPoll::kEnqueueing || poll.collective == NcclWatchPoll::kRunning) &&
             poll.pending_s > poll.timeout_s) {
    reason = rdd::detail::concat("a collective has waited more than ", poll.timeout_s,
                                 " s (--nccl-timeout) for the other ranks (a rank died or hangs)");
  }
  if (reason.empty()) return reason;
  const bool pending = poll.collective == NcclWatchPoll::kEnqueueing || poll.collective == NcclWatchPoll::kRunning ||
                       poll.collective == NcclWatchPoll::kCudaError;
  if (!pending) return "NCCL communicator aborted by the watchdog: " + reason;
  return rdd::detail::concat("NCCL communicator aborted by the watchdog after ", std::llround(poll.pending_s), " s: ", reason);
}
}  // namespace detail

#if RDD_WITH_CUDA && !RDD_CUDA_EMULATED
namespace {

using Clock = std::chrono::steady_clock;
using Watch = detail::NcclWatchPoll;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

ncclDataType_t nccl_type(const Tensor& t, const char* who) {
  switch (t.dtype()) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
  }
  fail(who, ": unsupported ", t.desc());
}

// "ncclRemoteError: remote process exited or there was a network error (<NCCL's last message>)".
std::string describe_nccl(ncclResult_t r, ncclComm_t comm) {
  std::string s = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);  // the argument is unused: NCCL's last error message
  if (last && *last) s += std::string(" (") + last + ")";
  return s;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const std::string& id, int rank, int world, int device, double timeout_s)
      : rank_(rank), world_(world), device_(device), timeout_s_(timeout_s) {
    RDD_CHECK(id.size() == sizeof(ncclUniqueId), "NCCL unique id has ", id.size(), " bytes, expected ",
              sizeof(ncclUniqueId));
    RDD_CHECK(rank >= 0 && rank < world, "NCCL rank ", rank, " outside [0, ", world, ")");
    ncclUniqueId uid;
    std::copy(id.begin(), id.end(), uid.internal);
    cuda_context(device);  // creates the streams; makes `device` current (NCCL binds the communicator to it)
    try {
      RDD_CUDA_CHECK(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming));
      RDD_CUDA_CHECK(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming));
      RDD_CUDA_CHECK(cudaEventCreateWithFlags(&watch_event_, cudaEventDisableTiming));
      init(uid);
      watchdog_ = std::thread([this] { watch(); });
    } catch (...) {
      release(/*abort=*/true);  // the destructor does not run for a constructor that throws
      throw;
    }
  }
  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(watch_mu_);
      stop_ = true;
    }
    watch_cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    // A normal exit finalizes (flushes the outstanding work, with a time limit: a dead or diverged peer
    // would never complete it, and the watchdog is gone); an exception path aborts ("aborts any
    // uncompleted operations").
    release(/*abort=*/std::uncaught_exceptions() > 0);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  bool data_parallel() const override { return true; }  // even for one rank: see communicator.h

  void all_reduce_sum(Tensor& t) override { all_reduce(t, ncclSum, /*compute_waits=*/true); }
  void all_reduce_mean(Tensor& t) override { all_reduce(t, ncclAvg, /*compute_waits=*/true); }

  // Enqueued after the compute stream's work so far; the compute stream does not wait for it.
  void all_reduce_mean_async(Tensor& t) override {
    // Hold t until wait_async(): the caching allocator is ordered on the compute stream only, so a
    // block freed now could go to the next compute kernel while NCCL still writes it.
    in_flight_.push_back(t);
    all_reduce(t, ncclAvg, /*compute_waits=*/false);
  }
  void wait_async() override {
    throw_if_aborted("wait_async");
    join_comm_stream();
    in_flight_.clear();  // later compute kernels now run after those collectives
  }

  void broadcast(Tensor& t, int root) override {
    check(t, "broadcast");
    RDD_CHECK(root >= 0 && root < world_, "NCCL broadcast: root ", root, " outside [0, ", world_, ")");
    void* p = t.raw();
    const size_t n = size_t(t.numel());
    const ncclDataType_t type = nccl_type(t, "broadcast");
    run("broadcast", /*compute_waits=*/true,
        [&](ncclComm_t comm, cudaStream_t s) { return ncclBroadcast(p, p, n, type, root, comm, s); });
  }

  void barrier() override {
    Tensor one = Tensor::full({1}, 1.0, DType::f32, Device::cuda(device_));
    all_reduce_sum(one);
    synchronize(Device::cuda(device_));  // returns when the all-reduce completed, or was aborted
    throw_if_aborted("barrier");
  }

  void throw_if_failed() override { throw_if_aborted("collective"); }

 private:
  // Nonblocking init: ncclCommInitRankConfig returns at once and NCCL connects the ranks in the
  // background; polling ncclCommGetAsyncError against the deadline (the user guide's "checkTimeout"
  // loop) turns a rank that never joins into an error. ncclCommAbort may stop an init in progress.
  void init(const ncclUniqueId& uid) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    // NCCL lets this variable override config.blocking; blocking calls could not be timed out or aborted.
    if (const char* b = std::getenv("NCCL_COMM_BLOCKING"); b && std::string(b) == "1")
      std::fprintf(stderr, "rdd: rank %d: NCCL_COMM_BLOCKING=1 makes NCCL calls block: --nccl-timeout cannot stop a "
                   "hung peer during init or a collective's setup (unset it)\n", rank_);
    const Clock::time_point start = Clock::now();
    ncclResult_t state = ncclCommInitRankConfig(&comm_, world_, uid, rank_, &config);
    while (state == ncclInProgress) {
      if (seconds_since(start) > timeout_s_)
        fail("NCCL init: rank ", rank_, " of ", world_, " waited more than ", timeout_s_,
             " s (--nccl-timeout) for the other ranks to join (a rank died, or cannot reach this one: rerun "
             "with NCCL_DEBUG=INFO)");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      const ncclResult_t queried = ncclCommGetAsyncError(comm_, &state);
      if (queried != ncclSuccess) state = queried;
    }
    if (state != ncclSuccess)
      fail("NCCL init of rank ", rank_, " of ", world_, " failed: ", describe_nccl(state, comm_),
           "; rerun with NCCL_DEBUG=INFO for details");
  }

  // Aborts or destroys the communicator (if still live), then frees the events. Never throws.
  void release(bool abort) noexcept {
    ncclComm_t comm = nullptr;
    {
      std::lock_guard<std::mutex> lock(comm_mu_);
      std::swap(comm, comm_);
    }
    if (comm) {
      // A nonblocking communicator shuts down cleanly as ncclCommFinalize ("flushes all issued
      // communications" and reports ncclInProgress until globally quiescent), polled to ncclSuccess,
      // then ncclCommDestroy ("can locally free the rest ... without blocking"). No quiescence within
      // the teardown limit (a peer that never finalizes), or any error: abort instead, and say so.
      if (!abort) {
        const double limit_s = std::min(timeout_s_, 120.0);
        ncclResult_t state = ncclCommFinalize(comm);
        const Clock::time_point start = Clock::now();
        while (state == ncclInProgress && seconds_since(start) <= limit_s) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          const ncclResult_t queried = ncclCommGetAsyncError(comm, &state);
          if (queried != ncclSuccess) state = queried;
        }
        abort = state != ncclSuccess;
        if (abort)
          std::fprintf(stderr, "rdd: rank %d: NCCL did not shut down cleanly within %.0f s (%s); aborting it\n", rank_,
                       limit_s, state == ncclInProgress ? "a peer never finalized" : ncclGetErrorString(state));
      }
      if (abort) ncclCommAbort(comm); else ncclCommDestroy(comm);
    }
    // Tensors of never-waited async all-reduces: order the compute stream after the (now finished or
    // aborted) collectives before their blocks go back to the allocator. Enqueues only; never blocks.
    if (!in_flight_.empty()) {
      try {
        join_comm_stream();
      } catch (const std::exception&) {  // a CUDA error already reported elsewhere
      }
      in_flight_.clear();
    }
    if (watch_event_) cudaEventDestroy(watch_event_);
    if (compute_done_) cudaEventDestroy(compute_done_);
    if (comm_done_) cudaEventDestroy(comm_done_);
    watch_event_ = compute_done_ = comm_done_ = nullptr;
  }

  void check(const Tensor& t, const char* who) {
    RDD_CHECK(t.device() == Device::cuda(device_), "NCCL ", who, ": ", t.desc(), " is not on cuda:", device_);
  }

  void all_reduce(Tensor& t, ncclRedOp_t op, bool compute_waits) {
    check(t, "all_reduce");
    void* p = t.raw();
    const size_t n = size_t(t.numel());
    const ncclDataType_t type = nccl_type(t, "all_reduce");
    run("all_reduce", compute_waits,
        [&](ncclComm_t comm, cudaStream_t s) { return ncclAllReduce(p, p, n, type, op, comm, s); });
  }

  // Enqueues one collective on the communication stream after the compute stream's pending work;
  // with compute_waits, the compute stream's next kernels run after it (ordinary stream order).
  // enqueue(comm, stream) makes the NCCL call and returns its ncclResult_t; it must not throw (the
  // collective would stay "enqueueing" and be timed out).
  template <class Enqueue>
  void run(const char* what, bool compute_waits, Enqueue&& enqueue) {
    throw_if_aborted(what);
    CudaContext& ctx = cuda_context(device_);
    RDD_CUDA_CHECK(cudaEventRecord(compute_done_, ctx.compute_stream()));
    RDD_CUDA_CHECK(cudaStreamWaitEvent(ctx.comm_stream(), compute_done_, 0));
    // Pending from before the NCCL call: an enqueue that never finishes (a dead peer during the
    // connection setup of a first collective) is timed out like a stuck kernel.
    mark_enqueueing();
    ncclResult_t r;
    {
      std::lock_guard<std::mutex> lock(comm_mu_);
      if (!comm_) fail_aborted(what);  // the watchdog aborted since throw_if_aborted
      r = enqueue(comm_, ctx.comm_stream());
    }
    settle(what, r);
    mark_enqueued(ctx.comm_stream());
    if (compute_waits) join_comm_stream();
  }

  // Waits (polling, lock released in between so the watchdog can abort) until a nonblocking call
  // that returned `r` leaves ncclInProgress; NCCL forbids other NCCL calls and CUDA work on its stream
  // before. An error aborts the communicator.
  void settle(const char* what, ncclResult_t r) {
    // With several ranks every nonblocking collective comes back ncclInProgress (NCCL finishes the group
    // on a thread) and is usually ready within microseconds: yield-and-poll for ~50 µs, then sleep —
    // SyncBN makes one synchronous collective per BN layer, so a fixed 100 µs sleep would add up.
    const Clock::time_point start = Clock::now();
    while (r == ncclInProgress) {
      if (seconds_since(start) < 50e-6) std::this_thread::yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(20));
      std::lock_guard<std::mutex> lock(comm_mu_);
      if (!comm_) fail_aborted(what);
      const ncclResult_t queried = ncclCommGetAsyncError(comm_, &r);
      if (queried != ncclSuccess) r = queried;
    }
    if (r == ncclSuccess) return;
    std::lock_guard<std::mutex> lock(comm_mu_);
    if (!comm_) fail_aborted(what);
    const std::string error = describe_nccl(r, comm_);
    // Every error aborts, ncclInvalidArgument included: a nonblocking communicator keeps a failed call's
    // error as its state (ncclCommSetAsyncError), so every later call would fail with it anyway.
    abort_locked(rdd::detail::concat("NCCL communicator aborted after ", what, " failed: ", error,
                                     "; rerun with NCCL_DEBUG=INFO for details"));
    fail_aborted(what);
  }

  // The compute stream's next kernels wait for everything enqueued on the communication stream.
  void join_comm_stream() {
    CudaContext& ctx = cuda_context(device_);
    RDD_CUDA_CHECK(cudaEventRecord(comm_done_, ctx.comm_stream()));
    RDD_CUDA_CHECK(cudaStreamWaitEvent(ctx.compute_stream(), comm_done_, 0));
  }

  void throw_if_aborted(const char* what) {
    std::lock_guard<std::mutex> lock(comm_mu_);
    if (!comm_) fail_aborted(what);
  }
  // Caller holds comm_mu_ and found comm_ null.
  [[noreturn]] void fail_aborted(const char* what) const {
    fail("NCCL ", what, " on rank ", rank_, ": ",
         abort_message_.empty() ? std::string("the communicator is closed") : abort_message_);
  }

  // Caller holds comm_mu_ and comm_ is live. A nonblocking communicator may be aborted at any point,
  // provided no other thread is inside an NCCL call on it (comm_mu_).
  void abort_locked(const std::string& message) {
    std::fprintf(stderr, "rdd: rank %d: %s\n", rank_, message.c_str());
    abort_message_ = message;
    ncclCommAbort(comm_);
    comm_ = nullptr;  // freed by ncclCommAbort
  }

  // The watchdog's view of the communication stream: the latest collective, from just before its NCCL
  // call; once enqueued, an event recorded after it. Done = that event completed.
  void mark_enqueueing() {
    std::lock_guard<std::mutex> lock(watch_mu_);
    collective_ = Watch::kEnqueueing;
    pending_since_ = Clock::now();
  }
  void mark_enqueued(cudaStream_t comm_stream) {
    // Recorded outside the lock (a full launch queue can block it); only this thread records it.
    RDD_CUDA_CHECK(cudaEventRecord(watch_event_, comm_stream));
    std::lock_guard<std::mutex> lock(watch_mu_);
    collective_ = Watch::kRunning;
  }
  void watch() {
    cudaSetDevice(device_);  // the events and the communicator belong to this device
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(watch_mu_);
        if (watch_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) return;
      }
      // The two locks are never nested: the collective's state under watch_mu_ first, then the NCCL
      // query and the abort under comm_mu_ (a CUDA call blocked under one cannot stall the other).
      Watch poll;
      poll.timeout_s = timeout_s_;
      {
        std::lock_guard<std::mutex> lock(watch_mu_);
        observe(poll);
      }
      std::lock_guard<std::mutex> comm_lock(comm_mu_);
      if (!comm_) return;  // aborted: nothing left to watch
      ncclResult_t async = ncclSuccess;
      const ncclResult_t queried = ncclCommGetAsyncError(comm_, &async);
      if (queried != ncclSuccess) async = queried;
      // ncclInProgress: the main thread is settling a nonblocking call; not an error.
      if (async != ncclSuccess && async != ncclInProgress) poll.nccl_error = describe_nccl(async, comm_);
      const std::string verdict = detail::nccl_watchdog_verdict(poll);
      if (!verdict.empty()) abort_locked(verdict);
    }
  }

  // Fills the collective's state into the poll (caller holds watch_mu_).
  void observe(Watch& poll) {
    poll.collective = collective_;
    if (collective_ == Watch::kIdle) return;
    poll.pending_s = seconds_since(pending_since_);
    if (collective_ != Watch::kRunning) return;
    const cudaError_t e = cudaEventQuery(watch_event_);
    if (e == cudaSuccess) {
      poll.collective = Watch::kDone;
      collective_ = Watch::kIdle;
    } else if (e != cudaErrorNotReady) {
      poll.collective = Watch::kCudaError;
      poll.cuda_error = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    }
  }

  const int rank_, world_, device_;
  const double timeout_s_;
  cudaEvent_t compute_done_ = nullptr, comm_done_ = nullptr, watch_event_ = nullptr;
  std::vector<Tensor> in_flight_;  // tensors of all_reduce_mean_async calls not yet waited for

  std::mutex comm_mu_;          // serialises every NCCL call on comm_; guards comm_ and abort_message_
  ncclComm_t comm_ = nullptr;   // null once aborted (or released)
  std::string abort_message_;   // why it was aborted

  std::mutex watch_mu_;         // guards the fields below and the watchdog's query of watch_event_ (the
                                // main thread records it outside the lock, while collective_ is kEnqueueing)
  std::condition_variable watch_cv_;
  bool stop_ = false;
  Watch::Collective collective_ = Watch::kIdle;  // kIdle, kEnqueueing or kRunning
  Clock::time_point pending_since_;
  std::thread watchdog_;
};

}  // namespace

std::string nccl_unique_id() {
  ncclUniqueId id;
  RDD_NCCL_CHECK(ncclGetUniqueId(&id));
  return std::string(id.internal, sizeof(id.internal));
}

std::unique_ptr<Communicator> make_nccl_communicator(const std::string& unique_id, int rank, int world_size, int device,
                                                     double timeout_s) {
  RDD_CHECK(timeout_s > 0, "NCCL timeout must be positive, got ", timeout_s);
  return std::make_unique<NcclCommunicator>(unique_id, rank, world_size, device, timeout_s);
}
#else
namespace {
const char* kNoNccl = RDD_CUDA_EMULATED ? "NCCL: this is an emulated-CUDA build of rdd, which has no NCCL (one process; "
                                          "the in-process communicator stands in for ranks in tests)"
                                        : "NCCL: this is a CPU-only build of rdd";
}  // namespace
std::string nccl_unique_id() { fail(kNoNccl); }
std::unique_ptr<Communicator> make_nccl_communicator(const std::string&, int, int, int, double) { fail(kNoNccl); }
#endif

}  // namespace rdd::dist
