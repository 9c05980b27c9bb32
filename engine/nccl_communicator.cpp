// The NCCL communicator: one process per GPU, collectives on the device's communication stream.
#include "engine/communicator.h"

#if RDD_WITH_CUDA
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "engine/cuda_check.h"
#include "engine/cuda_context.h"
#endif

namespace rdd {

#if RDD_WITH_CUDA
namespace {

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

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const std::string& id, int rank, int world, int device, double timeout_s)
      : rank_(rank), world_(world), device_(device), timeout_s_(timeout_s) {
    RDD_CHECK(id.size() == sizeof(ncclUniqueId), "NCCL unique id has ", id.size(), " bytes, expected ",
              sizeof(ncclUniqueId));
    RDD_CHECK(rank >= 0 && rank < world, "NCCL rank ", rank, " outside [0, ", world, ")");
    ncclUniqueId uid;
    std::copy(id.begin(), id.end(), uid.internal);
    CudaContext& ctx = cuda_context(device);
    (void)ctx;
    RDD_NCCL_CHECK(ncclCommInitRank(&comm_, world, uid, rank));
    RDD_CUDA_CHECK(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming));
    RDD_CUDA_CHECK(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming));
    RDD_CUDA_CHECK(cudaEventCreateWithFlags(&watch_event_, cudaEventDisableTiming));
    watchdog_ = std::thread([this] { watch(); });
  }
  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(watch_mu_);
      stop_ = true;
    }
    watch_cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    if (comm_ && !aborted_) ncclCommDestroy(comm_);
    if (watch_event_) cudaEventDestroy(watch_event_);
    if (compute_done_) cudaEventDestroy(compute_done_);
    if (comm_done_) cudaEventDestroy(comm_done_);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void all_reduce_sum(Tensor& t) override { reduce(t, ncclSum); }
  bool aborted() const { return aborted_; }
  void all_reduce_mean(Tensor& t) override { reduce(t, ncclAvg); }

  // Enqueued after the compute stream's work so far; the compute stream does not wait for it.
  void all_reduce_mean_async(Tensor& t) override {
    check(t, "all_reduce");
    CudaContext& ctx = cuda_context(device_);
    RDD_CUDA_CHECK(cudaEventRecord(compute_done_, ctx.compute_stream()));
    RDD_CUDA_CHECK(cudaStreamWaitEvent(ctx.comm_stream(), compute_done_, 0));
    RDD_NCCL_CHECK(ncclAllReduce(t.raw(), t.raw(), size_t(t.numel()), nccl_type(t, "all_reduce"), ncclAvg, comm_,
                                 ctx.comm_stream()));
    mark_pending(ctx.comm_stream());
  }
  void wait_async() override {
    CudaContext& ctx = cuda_context(device_);
    RDD_CUDA_CHECK(cudaEventRecord(comm_done_, ctx.comm_stream()));
    RDD_CUDA_CHECK(cudaStreamWaitEvent(ctx.compute_stream(), comm_done_, 0));
  }

  void broadcast(Tensor& t, int root) override {
    check(t, "broadcast");
    run([&](cudaStream_t s) {
      RDD_NCCL_CHECK(ncclBroadcast(t.raw(), t.raw(), size_t(t.numel()), nccl_type(t, "broadcast"), root, comm_, s));
    });
  }

  void barrier() override {
    Tensor one = Tensor::full({1}, 1.0, DType::f32, Device::cuda(device_));
    all_reduce_sum(one);
    synchronize(Device::cuda(device_));
  }

 private:
  void check(const Tensor& t, const char* who) {
    RDD_CHECK(t.device() == Device::cuda(device_), "NCCL ", who, ": ", t.desc(), " is not on cuda:", device_);
  }
  void reduce(Tensor& t, ncclRedOp_t op) {
    check(t, "all_reduce");
    run([&](cudaStream_t s) {
      RDD_NCCL_CHECK(ncclAllReduce(t.raw(), t.raw(), size_t(t.numel()), nccl_type(t, "all_reduce"), op, comm_, s));
    });
  }
  // Order the collective after the compute stream's pending work, and the compute stream's next
  // kernels after the collective.
  template <class F>
  void run(F&& enqueue) {
    CudaContext& ctx = cuda_context(device_);
    RDD_CUDA_CHECK(cudaEventRecord(compute_done_, ctx.compute_stream()));
    RDD_CUDA_CHECK(cudaStreamWaitEvent(ctx.comm_stream(), compute_done_, 0));
    enqueue(ctx.comm_stream());
    mark_pending(ctx.comm_stream());
    RDD_CUDA_CHECK(cudaEventRecord(comm_done_, ctx.comm_stream()));
    RDD_CUDA_CHECK(cudaStreamWaitEvent(ctx.compute_stream(), comm_done_, 0));
  }

  // The watchdog's view of the communication stream: an event recorded after the latest collective
  // and when it was enqueued. Pending = the event has not completed.
  void mark_pending(cudaStream_t comm_stream) {
    std::lock_guard<std::mutex> lock(watch_mu_);
    RDD_CUDA_CHECK(cudaEventRecord(watch_event_, comm_stream));
    pending_since_ = std::chrono::steady_clock::now();
    pending_ = true;
  }

  void watch() {
    cudaSetDevice(device_);  // the events and the communicator belong to this device
    std::unique_lock<std::mutex> lock(watch_mu_);
    while (!stop_) {
      watch_cv_.wait_for(lock, std::chrono::seconds(1));
      if (stop_ || aborted_) continue;
      ncclResult_t async = ncclSuccess;
      const bool nccl_error = ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess &&
                              async != ncclInProgress;
      bool timed_out = false;
      if (pending_) {
        if (cudaEventQuery(watch_event_) == cudaSuccess) {
          pending_ = false;
        } else {
          timed_out = std::chrono::duration<double>(std::chrono::steady_clock::now() - pending_since_).count() > timeout_s_;
        }
      }
      if (!nccl_error && !timed_out) continue;
      std::fprintf(stderr, "rdd: rank %d: %s; aborting the NCCL communicator so this rank stops instead of hanging\n",
                   rank_,
                   nccl_error ? (std::string("NCCL reported an asynchronous error: ") + ncclGetErrorString(async)).c_str()
                              : (std::string("a collective has waited more than ") + std::to_string(int(timeout_s_)) +
                                 " s for the other ranks (a rank died or hangs)").c_str());
      aborted_ = true;
      ncclCommAbort(comm_);
    }
  }

  int rank_, world_, device_;
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
  cudaEvent_t compute_done_ = nullptr, comm_done_ = nullptr, watch_event_ = nullptr;
  std::thread watchdog_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stop_ = false, pending_ = false;
  std::atomic<bool> aborted_{false};
  std::chrono::steady_clock::time_point pending_since_;
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
std::string nccl_unique_id() { fail("NCCL: this is a CPU-only build of rdd"); }
std::unique_ptr<Communicator> make_nccl_communicator(const std::string&, int, int, int, double) {
  fail("NCCL: this is a CPU-only build of rdd");
}
#endif

}  // namespace rdd
