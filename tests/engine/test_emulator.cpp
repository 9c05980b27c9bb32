// The emulated CUDA device (RDD_CUDA=EMULATE) checked on small kernels of its own: CUDA's semantics for
// schedules, barriers and warp collectives, and planted bugs — a missing __syncthreads, a diverged warp
// shuffle, a barrier not reached by every thread, a host pointer, an out-of-range write, a copy of the
// wrong kind — each caught with a message that names the kernel. If the emulator stops catching one,
// its case fails.
#if RDD_CUDA_EMULATED
#include "engine/emu_kernel.h"  // first: CUDA's kernel vocabulary, as the build gives every .cu file

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <climits>
#include <numeric>
#include <thread>
#include <vector>

#include "engine/allocator.h"
#include "engine/cuda_context.h"
#include "engine/cuda_launch.h"
#include "engine/emu_device.h"
#include "engine/tensor.h"
#include "harness.h"

using namespace rdd;

namespace {

// ---- kernels ----

// order: (blockDim.x) — the position at which each thread of the block ran.
__global__ void arrival_order_kernel(int* order, int* counter) { order[threadIdx.x] = atomicAdd(counter, 1); }

// out[t] = in[(t + 1) % n] through shared memory; `with_barrier` false plants the bug.
__global__ void rotate_kernel(const float* in, float* out, bool with_barrier) {
  RDD_SHARED(float, s, 256);
  const unsigned t = threadIdx.x, n = blockDim.x;
  s[t] = in[t];
  if (with_barrier) __syncthreads();
  out[t] = s[(t + 1) % n];
}

// Every warp collective, with widths 32 and 8: out (7, blockDim.x).
__global__ void warp_ops_kernel(const int* in, int* out) {
  const unsigned t = threadIdx.x, n = blockDim.x;
  const int v = in[t];
  out[0 * n + t] = __shfl_down_sync(0xffffffffu, v, 3);
  out[1 * n + t] = __shfl_up_sync(0xffffffffu, v, 2);
  out[2 * n + t] = __shfl_xor_sync(0xffffffffu, v, 5);
  out[3 * n + t] = __shfl_sync(0xffffffffu, v, 7);
  out[4 * n + t] = __shfl_down_sync(0xffffffffu, v, 3, 8);
  out[5 * n + t] = int(__ballot_sync(0xffffffffu, v % 3 == 0));
  out[6 * n + t] = __any_sync(0xffffffffu, v == 40) + 2 * __all_sync(0xffffffffu, v >= 0);
}

// Planted: lanes 16..31 leave before the shuffle that names them.
__global__ void diverged_shuffle_kernel(float* out) {
  const unsigned lane = threadIdx.x % 32;
  if (lane >= 16) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, float(lane), 1);
}

// Planted: the first warp waits at one barrier, the others at another.
__global__ void split_barrier_kernel(float* out) {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.f;
}

// Threads that exit before a barrier do not hold it up (CUDA counts only threads that have not exited).
__global__ void early_exit_kernel(const float* in, float* out, int n) {
  RDD_SHARED(float, s, 128);
  const int t = int(threadIdx.x);
  if (t >= n) return;
  s[t] = in[t] * 2.f;
  __syncthreads();
  out[t] = s[n - 1 - t];
}

// Reads its shared array before writing it: undefined on a GPU. The emulator gives every block a fresh copy
// of 0xff bytes (NaN), so the read shows, instead of returning what another block left there.
__global__ void read_before_write_kernel(float* out) {
  RDD_SHARED(float, s, 64);
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x];
  s[threadIdx.x] = 1.f;
}

// Planted: the last thread writes one element past a shared array.
[[maybe_unused]] __global__ void shared_out_of_range_kernel(float* out) {
  RDD_SHARED(float, s, 32);
  s[threadIdx.x + 1] = 1.f;
  out[threadIdx.x] = 0.f;
}

// Planted: one element past the end.
[[maybe_unused]] __global__ void out_of_range_kernel(float* p, int n) {
  if (threadIdx.x == 0) p[n] = 1.f;
}

__global__ void fill_kernel(float* p, int n, float v) {
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) p[i] = v;
}

// ---- helpers ----

cudaStream_t stream() { return cuda_context(0).compute_stream(); }

// Runs f under a schedule (and the race check off), restoring the settings after.
template <class F>
void with_schedule(const std::string& schedule, F&& f, bool racecheck = false) {
  const emu::Schedule before = emu::schedule();
  const bool racecheck_before = emu::racecheck_enabled();
  emu::set_schedule(emu::Schedule::parse(schedule));
  emu::set_racecheck(racecheck);
  try {
    f();
  } catch (...) {
    emu::set_schedule(before);
    emu::set_racecheck(racecheck_before);
    throw;
  }
  emu::set_schedule(before);
  emu::set_racecheck(racecheck_before);
}

// The message of the sticky fault the kernel launched by `launch_it` left (then cleared, so later cases
// start clean). The fault may surface at the launch's own error check: the device runs ahead of the host
// and a faulted device fails every later call, as a GPU does.
template <class F>
std::string kernel_fault(F&& launch_it) {
  const std::string m = test::error_message([&] {
    launch_it();
    synchronize(Device::cuda(0));
  });
  emu::clear_fault_for_tests();
  return m;
}

std::vector<int> arrival_order(const std::string& schedule, int n) {
  Tensor order = Tensor::zeros({n}, DType::i32, Device::cuda(0));
  Tensor counter = Tensor::zeros({1}, DType::i32, Device::cuda(0));
  with_schedule(schedule, [&] { launch<arrival_order_kernel>(1, n, 0, stream())(order.data<int>(), counter.data<int>()); });
  return order.to_vector<int32_t>();
}

}  // namespace

GPU_TEST_CASE("emulator: the schedule orders a block's threads (forward, reverse, seeded shuffle)") {
  const int n = 96;
  std::vector<int> identity(n);
  std::iota(identity.begin(), identity.end(), 0);
  CHECK(arrival_order("forward", n) == identity);
  std::vector<int> reversed(identity.rbegin(), identity.rend());
  CHECK(arrival_order("reverse", n) == reversed);
  const std::vector<int> a = arrival_order("shuffle:5", n), b = arrival_order("shuffle:5", n);
  CHECK(a == b);  // seeded: a failure under a schedule reproduces
  CHECK(a != identity);
  CHECK(a != reversed);
  CHECK(arrival_order("shuffle:6", n) != a);
  std::vector<int> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == identity);  // every thread ran exactly once
  CHECK_THROWS_WITH_AS(emu::Schedule::parse("shuffle:x"), doctest::Contains("RDD_EMU_SCHEDULE=shuffle:x"), Error);
  CHECK_THROWS_WITH_AS(emu::Schedule::parse("backwards"), doctest::Contains("expected forward, reverse or shuffle"), Error);
}

GPU_TEST_CASE("emulator: __syncthreads separates rounds; a missing one changes results between schedules") {
  const int n = 256;
  const Tensor in = test::random_tensor({n}, 3).to(Device::cuda(0));
  const std::vector<float> host = in.to_vector<float>();
  std::vector<float> want(n);
  for (int t = 0; t < n; ++t) want[size_t(t)] = host[size_t((t + 1) % n)];
  auto run = [&](const std::string& schedule, bool with_barrier) {
    Tensor out = Tensor::zeros({n}, DType::f32, Device::cuda(0));
    with_schedule(schedule, [&] {
      launch<rotate_kernel>(1, n, 0, stream())(in.data<float>(), out.data<float>(), with_barrier);
    });
    return out.to_vector<float>();
  };
  for (const char* s : {"forward", "reverse", "shuffle:1"}) CHECK(run(s, true) == want);
  // Without the barrier, thread t reads s[t + 1] before or after thread t + 1 wrote it, by schedule.
  // (Shared memory keeps what the last block on this OS thread left, as a GPU's may: the runs above
  // left this input's values, so the planted runs read another input.)
  const Tensor other = test::random_tensor({n}, 30).to(Device::cuda(0));
  launch<rotate_kernel>(1, n, 0, stream())(other.data<float>(), Tensor::zeros({n}, DType::f32, Device::cuda(0)).data<float>(), true);
  CHECK(run("forward", false) != run("reverse", false));
}

GPU_TEST_CASE("emulator: the race check names a kernel whose results depend on the schedule (a missing __syncthreads)") {
  const int n = 256;
  const Tensor in = test::random_tensor({n}, 4).to(Device::cuda(0));
  Tensor out = Tensor::zeros({n}, DType::f32, Device::cuda(0));
  const Tensor other = test::random_tensor({n}, 40).to(Device::cuda(0));
  const std::string m = kernel_fault([&] {
    with_schedule("shuffle:2", [&] {
      launch<rotate_kernel>(1, n, 0, stream())(in.data<float>(), out.data<float>(), true);
      synchronize(Device::cuda(0));  // the correct kernel passes the check
      // Another input than the one shared memory still holds (see the case above).
      launch<rotate_kernel>(1, n, 0, stream())(other.data<float>(), out.data<float>(), false);
      synchronize(Device::cuda(0));  // under the race check's schedules
    }, /*racecheck=*/true);
  });
  CHECK(m.find("racecheck: kernel 'rotate_kernel' gives different results under the schedules shuffle:2 and "
               "shuffle:3") != std::string::npos);
  CHECK(m.find("argument 1") != std::string::npos);
  CHECK(m.find("a missing __syncthreads") != std::string::npos);
}

GPU_TEST_CASE("emulator: warp collectives compute what CUDA defines (widths 32 and 8, a partial last warp)") {
  for (int n : {64, 48}) {
    INFO("blockDim " << n);
    std::vector<int> v(static_cast<size_t>(n));
    for (int t = 0; t < n; ++t) v[size_t(t)] = (t * 37 + 11) % 101;
    v[5] = 40;
    const Tensor in = Tensor::from_vector<int32_t>(v, {n}).to(Device::cuda(0));
    Tensor out = Tensor::zeros({7, n}, DType::i32, Device::cuda(0));
    if (n == 48) {
      // 0xffffffff names lanes 16..31 of the second warp, which do not exist: a fault, not garbage.
      const std::string m =
          kernel_fault([&] { launch<warp_ops_kernel>(1, n, 0, stream())(in.data<int>(), out.data<int>()); });
      CHECK(m.find("kernel 'warp_ops_kernel'") != std::string::npos);
      CHECK(m.find("names lane 16, but warp 1 has only 16 threads") != std::string::npos);
      continue;
    }
    launch<warp_ops_kernel>(1, n, 0, stream())(in.data<int>(), out.data<int>());
    const std::vector<int> got = out.to_vector<int32_t>();
    for (int t = 0; t < n; ++t) {
      const int lane = t % 32, warp = t / 32 * 32;
      auto at = [&](int l) { return v[size_t(warp + l)]; };
      INFO("thread " << t);
      CHECK(got[size_t(0 * n + t)] == (lane + 3 < 32 ? at(lane + 3) : at(lane)));
      CHECK(got[size_t(1 * n + t)] == (lane >= 2 ? at(lane - 2) : at(lane)));
      CHECK(got[size_t(2 * n + t)] == at(lane ^ 5));
      CHECK(got[size_t(3 * n + t)] == at(7));
      CHECK(got[size_t(4 * n + t)] == (lane % 8 + 3 < 8 ? at(lane + 3) : at(lane)));
      unsigned ballot = 0;
      for (int l = 0; l < 32; ++l)
        if (at(l) % 3 == 0) ballot |= 1u << l;
      CHECK(unsigned(got[size_t(5 * n + t)]) == ballot);
      bool any40 = false;
      for (int l = 0; l < 32; ++l) any40 = any40 || at(l) == 40;
      CHECK(got[size_t(6 * n + t)] == int(any40) + 2);
    }
  }
}

GPU_TEST_CASE("emulator: a diverged warp shuffle is a fault naming the kernel, the call and the lane") {
  Tensor out = Tensor::zeros({32}, DType::f32, Device::cuda(0));
  const std::string m = kernel_fault([&] { launch<diverged_shuffle_kernel>(1, 32, 0, stream())(out.data<float>()); });
  CHECK(m.find("kernel 'diverged_shuffle_kernel' block (0,0,0)") != std::string::npos);
  CHECK(m.find("__shfl_down_sync at ") != std::string::npos);
  CHECK(m.find("test_emulator.cpp") != std::string::npos);
  CHECK(m.find("exited without reaching it (a diverged warp collective)") != std::string::npos);
  CHECK(m.find("cudaErrorLaunchFailure") != std::string::npos);
}

GPU_TEST_CASE("emulator: a __syncthreads not reached by every live thread is a fault; exited threads are not waited for") {
  Tensor out = Tensor::zeros({64}, DType::f32, Device::cuda(0));
  const std::string m = kernel_fault([&] { launch<split_barrier_kernel>(1, 64, 0, stream())(out.data<float>()); });
  CHECK(m.find("kernel 'split_barrier_kernel'") != std::string::npos);
  CHECK(m.find("a barrier not reached by every live thread of the block") != std::string::npos);

  const int n = 100;  // 128 threads, 28 leave before the barrier
  const Tensor in = test::random_tensor({n}, 8).to(Device::cuda(0));
  Tensor y = Tensor::zeros({n}, DType::f32, Device::cuda(0));
  launch<early_exit_kernel>(1, 128, 0, stream())(in.data<float>(), y.data<float>(), n);
  const std::vector<float> x = in.to_vector<float>(), got = y.to_vector<float>();
  for (int t = 0; t < n; ++t) CHECK(got[size_t(t)] == 2.f * x[size_t(n - 1 - t)]);
}

GPU_TEST_CASE("emulator: the sticky fault fails every later call until cleared, as on a GPU") {
  Tensor out = Tensor::zeros({32}, DType::f32, Device::cuda(0));
  CHECK_THROWS_WITH_AS(
      {
        launch<diverged_shuffle_kernel>(1, 32, 0, stream())(out.data<float>());
        synchronize(Device::cuda(0));
      },
      doctest::Contains("diverged"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({4}, DType::f32, Device::cuda(0)).to_vector<float>(), doctest::Contains("diverged"),
                       Error);
  emu::clear_fault_for_tests();
  CHECK(Tensor::full({4}, 2.0, DType::f32, Device::cuda(0)).to_vector<float>() == std::vector<float>(4, 2.f));
}

GPU_TEST_CASE("emulator: launches are checked — a host pointer, a bad configuration, a bad stream") {
  std::vector<float> host(64, 0.f);
  CHECK_THROWS_WITH_AS(launch<fill_kernel>(1, 32, 0, stream())(host.data(), 64, 1.f),
                       doctest::Contains("kernel 'fill_kernel': argument 0 (") , Error);
  CHECK_THROWS_WITH_AS(launch<fill_kernel>(1, 32, 0, stream())(host.data(), 64, 1.f),
                       doctest::Contains("is not device memory"), Error);
  Tensor d = Tensor::zeros({64}, DType::f32, Device::cuda(0));
  CHECK_THROWS_WITH_AS(launch<fill_kernel>(1, 2048, 0, stream())(d.data<float>(), 64, 1.f),
                       doctest::Contains("outside CUDA's limits"), Error);
  CHECK_THROWS_WITH_AS(launch<fill_kernel>(dim3(1, 70000), 32, 0, stream())(d.data<float>(), 64, 1.f),
                       doctest::Contains("cudaErrorInvalidConfiguration"), Error);
  CHECK_THROWS_WITH_AS(launch<fill_kernel>(1, 32, 64 * 1024, stream())(d.data<float>(), 64, 1.f),
                       doctest::Contains("dynamic shared memory"), Error);
  int not_a_stream = 0;
  CHECK_THROWS_WITH_AS(
      launch<fill_kernel>(1, 32, 0, reinterpret_cast<cudaStream_t>(&not_a_stream))(d.data<float>(), 64, 1.f),
      doctest::Contains("is not a live stream"), Error);
  // Pinned host memory is device-accessible; a null optional argument is allowed.
  Tensor pinned = Tensor::empty_pinned({64}, DType::f32);
  launch<fill_kernel>(1, 32, 0, stream())(pinned.data<float>(), 64, 3.f);
  synchronize(Device::cuda(0));
  CHECK(pinned.to_vector<float>() == std::vector<float>(64, 3.f));
  launch<fill_kernel>(1, 32, 0, stream())(d.data<float>(), 64, 4.f);
  CHECK(d.to_vector<float>() == std::vector<float>(64, 4.f));
}

GPU_TEST_CASE("emulator: copies are checked against where their pointers live and the allocation's size") {
  Tensor d = Tensor::zeros({16}, DType::f32, Device::cuda(0));
  // The zero fill runs on the compute stream, which (non-blocking) does not order itself with the legacy
  // stream of cudaMemcpy: without this wait the fill and the first copy below race (the race check saw it).
  synchronize(Device::cuda(0));
  std::vector<float> host(16, 1.f), big(64, 1.f);
  auto call = [](cudaError_t e) {
    cudaGetLastError();
    return e == cudaSuccess ? std::string() : emu::last_error_detail();
  };
  CHECK(call(cudaMemcpy(d.data<float>(), host.data(), 64, cudaMemcpyHostToDevice)).empty());
  CHECK(call(cudaMemcpy(host.data(), d.data<float>(), 64, cudaMemcpyHostToDevice))
            .find("cudaMemcpy (cudaMemcpyHostToDevice): the destination 0x") != std::string::npos);
  CHECK(call(cudaMemcpy(host.data(), d.data<float>(), 64, cudaMemcpyHostToDevice)).find("is not device memory") !=
        std::string::npos);
  CHECK(call(cudaMemcpy(d.data<float>(), host.data(), 64, cudaMemcpyDeviceToDevice)).find("is not device memory") !=
        std::string::npos);
  CHECK(call(cudaMemcpy(host.data(), d.data<float>(), 64, cudaMemcpyHostToHost)).find("is device memory") !=
        std::string::npos);
  // 16 floats were asked for; the caching allocator rounds the block up, cudaMalloc's region is the block.
  const size_t block = emu::find_region(d.data<float>()).bytes;
  CHECK(block >= 64);
  CHECK(call(cudaMemcpy(d.data<float>(), big.data(), block + 4, cudaMemcpyHostToDevice)).find("runs past the end of") !=
        std::string::npos);
  CHECK(call(cudaMemsetAsync(d.data<float>() + 1, 0, block, stream())).find("runs past the end of") !=
        std::string::npos);
  CHECK(call(cudaFree(d.data<float>() + 1)).find("not a pointer cudaMalloc returned") != std::string::npos);
  // Through the checked-call macro the emulator's detail reaches the user.
  CHECK_THROWS_WITH_AS(RDD_CUDA_CHECK(cudaMemcpy(host.data(), d.data<float>(), 64, cudaMemcpyHostToDevice)),
                       doctest::Contains("is not device memory"), Error);
}

GPU_TEST_CASE("emulator: the host runs ahead of the device; streams, events and pageable copies keep CUDA's order") {
  CudaContext& ctx = cuda_context(0);
  // A pageable source may be reused as soon as cudaMemcpyAsync returns (it was staged)...
  std::vector<float> src(256, 1.f);
  Tensor d = Tensor::zeros({256}, DType::f32, Device::cuda(0));
  emu::enqueue_host_work(ctx.compute_stream(), [] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
  RDD_CUDA_CHECK(cudaMemcpyAsync(d.data<float>(), src.data(), 1024, cudaMemcpyHostToDevice, ctx.compute_stream()));
  std::fill(src.begin(), src.end(), 2.f);
  CHECK(d.to_vector<float>() == std::vector<float>(256, 1.f));
  // ...and the host really runs ahead: the stream is still busy right after the call.
  emu::enqueue_host_work(ctx.compute_stream(), [] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
  CHECK(cudaStreamQuery(ctx.compute_stream()) == cudaErrorNotReady);
  RDD_CUDA_CHECK(cudaStreamSynchronize(ctx.compute_stream()));
  CHECK(cudaStreamQuery(ctx.compute_stream()) == cudaSuccess);

  // The communication stream waits for an event recorded after slow work on the compute stream.
  cudaEvent_t done;
  RDD_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  Tensor x = Tensor::zeros({256}, DType::f32, Device::cuda(0));
  Tensor copy = Tensor::zeros({256}, DType::f32, Device::cuda(0));
  emu::enqueue_host_work(ctx.compute_stream(), [] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
  launch<fill_kernel>(1, 64, 0, ctx.compute_stream())(x.data<float>(), 256, 7.f);
  RDD_CUDA_CHECK(cudaEventRecord(done, ctx.compute_stream()));
  CHECK(cudaEventQuery(done) == cudaErrorNotReady);
  RDD_CUDA_CHECK(cudaStreamWaitEvent(ctx.comm_stream(), done, 0));
  RDD_CUDA_CHECK(cudaMemcpyAsync(copy.data<float>(), x.data<float>(), 1024, cudaMemcpyDeviceToDevice, ctx.comm_stream()));
  RDD_CUDA_CHECK(cudaStreamSynchronize(ctx.comm_stream()));
  CHECK(cudaEventQuery(done) == cudaSuccess);
  CHECK(copy.to_vector<float>() == std::vector<float>(256, 7.f));
  RDD_CUDA_CHECK(cudaEventDestroy(done));
}

// The block pool's threads pick up a grid that still has blocks to claim; the launching thread claims
// them too, so a grid can run out between a pool thread's look and its pick. Many two-block grids from
// two streams at once make that window likely (before the fix a pool thread then ran a null grid: a
// SEGV once in ~40 runs of models_gpu_shuffled).
GPU_TEST_CASE("emulator: many small grids from two streams at once all run, every block once") {
  CudaContext& ctx = cuda_context(0);
  const int launches = 50000;
  Tensor a = Tensor::zeros({64}, DType::f32, Device::cuda(0));
  Tensor b = Tensor::zeros({64}, DType::f32, Device::cuda(0));
  RDD_CUDA_CHECK(cudaStreamSynchronize(ctx.compute_stream()));  // b's zero fill (and ASan marks) before the comm stream writes it
  for (int i = 1; i <= launches; ++i) {
    launch<fill_kernel>(2, 32, 0, ctx.compute_stream())(a.data<float>(), 64, float(i));
    launch<fill_kernel>(2, 32, 0, ctx.comm_stream())(b.data<float>(), 64, float(-i));
  }
  CHECK(a.to_vector<float>() == std::vector<float>(64, float(launches)));
  RDD_CUDA_CHECK(cudaStreamSynchronize(ctx.comm_stream()));
  CHECK(b.to_vector<float>() == std::vector<float>(64, float(-launches)));
}

GPU_TEST_CASE("emulator: shared memory belongs to one block and starts as 0xff bytes (a read before a write shows)") {
  Tensor out = Tensor::zeros({8 * 64}, DType::f32, Device::cuda(0));
  launch<read_before_write_kernel>(8, 64, 0, stream())(out.data<float>());
  for (float v : out.to_vector<float>()) CHECK(std::isnan(v));  // as a thread_local, later blocks read 1
}

#if defined(__SANITIZE_ADDRESS__)
// Runs the planted case `name` (a doctest filter) in a child process of this test binary, where
// AddressSanitizer may stop it at the first bad access, and checks that it failed with every one of
// `expected` in its output.
static void check_planted_report(const std::string& name, std::initializer_list<const char*> expected) {
  char self[4096] = {0};
  REQUIRE(readlink("/proc/self/exe", self, sizeof(self) - 1) > 0);
  std::string out;
  const int rc = test::run_command(std::string(self) + " --no-skip -tc='" + name + "'", &out);
  INFO(out);
  CHECK(rc != 0);
  for (const char* text : expected) {
    INFO("expected in the report: ", std::string(text));
    CHECK(out.find(text) != std::string::npos);
  }
}

// Run by the case below in a child process: AddressSanitizer stops the process at the first bad access.
TEST_CASE("emulator planted: one element past a shared array" * doctest::skip()) {
  Tensor out = Tensor::zeros({32}, DType::f32, Device::cuda(0));
  launch<shared_out_of_range_kernel>(1, 32, 0, stream())(out.data<float>());
  synchronize(Device::cuda(0));
}

GPU_TEST_CASE("emulator: a write past a shared array is reported by AddressSanitizer, naming the kernel and thread") {
  check_planted_report("emulator planted: one element past a shared array",
                       {"heap-buffer-overflow", "WRITE of size 4",
                        "the access above was made by kernel 'shared_out_of_range_kernel' block (0,0,0) thread (31,0,0)"});
}

TEST_CASE("emulator planted: one element past the end of a tensor" * doctest::skip()) {
  Tensor t = Tensor::zeros({100}, DType::f32, Device::cuda(0));  // 400 bytes in a 512-byte cached block
  launch<out_of_range_kernel>(1, 32, 0, stream())(t.data<float>(), 100);
  synchronize(Device::cuda(0));
}

// Run by the use-after-free case below: a kernel launched after the host freed its tensor.
TEST_CASE("emulator planted: a kernel writes a tensor the host already freed" * doctest::skip()) {
  float* stale = nullptr;
  {
    Tensor t = Tensor::zeros({100}, DType::f32, Device::cuda(0));
    stale = t.data<float>();
  }  // back in the cache: poisoned once the stream gets past the free
  launch<fill_kernel>(1, 32, 0, stream())(stale, 100, 1.f);
  synchronize(Device::cuda(0));
}

// Stream-ordered reuse: the host frees a tensor while kernels that write it are still queued, and the
// next allocation takes the same block. CUDA allows this (one stream orders the old and the new use), so
// the poisoning must follow the stream, not the host: no report, and each user sees its own values.
GPU_TEST_CASE("emulator: a block freed while queued kernels still write it is reused without a report") {
  CudaContext& ctx = cuda_context(0);
  cuda_allocator(0).empty_cache();  // so that the block freed below is the only one the next tensor can get
  float* first_block = nullptr;
  {
    Tensor a = Tensor::empty({1000}, DType::f32, Device::cuda(0));
    first_block = a.data<float>();
    // The stream is held back, so every kernel below runs after the host has freed `a`.
    emu::enqueue_host_work(ctx.compute_stream(), [] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
    launch<fill_kernel>(4, 256, 0, stream())(a.data<float>(), 1000, 3.f);
  }
  Tensor b = Tensor::empty({900}, DType::f32, Device::cuda(0));  // smaller: the slack is poisoned too
  CHECK(b.data<float>() == first_block);                         // the same cached block
  launch<fill_kernel>(4, 256, 0, stream())(b.data<float>(), 900, 5.f);
  CHECK(b.to_vector<float>() == std::vector<float>(900, 5.f));
}

// Run by the case below: a one-block kernel runs on the stream's own OS thread; then host work on that
// stream faults (the shape of a kernel's stray write found later, outside the kernel).
TEST_CASE("emulator planted: a fault on a stream thread after a kernel" * doctest::skip()) {
  Tensor t = Tensor::zeros({32}, DType::f32, Device::cuda(0));
  launch<fill_kernel>(1, 32, 0, stream())(t.data<float>(), 32, 1.f);
  emu::enqueue_host_work(stream(), [] { *reinterpret_cast<volatile int*>(uintptr_t(0x5222)) = 1; });
  synchronize(Device::cuda(0));
}

GPU_TEST_CASE("emulator: a fault outside any kernel on a device thread names the last block that thread ran") {
  check_planted_report("emulator planted: a fault on a stream thread after a kernel",
                       {"SEGV on unknown address 0x000000005222",
                        "outside a kernel's code, on an OS thread of the emulated device; the last block it ran: kernel "
                        "'fill_kernel' block (0,0,0)"});
}

GPU_TEST_CASE("emulator: a kernel that writes a freed tensor is reported by AddressSanitizer") {
  check_planted_report("emulator planted: a kernel writes a tensor the host already freed",
                       {"use-after-poison", "the access above was made by kernel 'fill_kernel'"});
}

GPU_TEST_CASE("emulator: an out-of-range write in a kernel is reported by AddressSanitizer, naming the kernel") {
  check_planted_report("emulator planted: one element past the end*",
                       {"AddressSanitizer", "WRITE of size 4",
                        "the access above was made by kernel 'out_of_range_kernel' block (0,0,0) thread (0,0,0)"});
}
#endif
#endif  // RDD_CUDA_EMULATED
