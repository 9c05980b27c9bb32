// GPU side of segmentation_metrics: channel argmax and confusion-matrix accumulation.
#include <climits>

#include "engine/cuda_check.h"
#include "engine/cuda_launch.h"

namespace rdd::kernels {

namespace {
// logits (N, C, HW) → out (N, HW): one thread per pixel, reading channel planes (coalesced across threads).
__global__ void argmax_kernel(const float* __restrict__ x, int32_t* __restrict__ out, int64_t n, int64_t c, int64_t hw) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * hw; i += int64_t(gridDim.x) * blockDim.x) {
    const float* px = x + (i / hw) * c * hw + (i % hw);
    int32_t best = 0;
    float best_v = px[0];
    for (int64_t k = 1; k < c; ++k) {
      const float v = px[k * hw];
      if (v > best_v) { best_v = v; best = int32_t(k); }
    }
    out[i] = best;
  }
}

// Per-block histogram in shared memory (C·C ≤ 4096 bins fits 32 KiB of u64), then one atomicAdd per bin.
__global__ void confusion_kernel(const int32_t* __restrict__ pred, const int32_t* __restrict__ label, int64_t n,
                                 int num_classes, unsigned long long* counts, int32_t* bad) {
  RDD_EXTERN_SHARED(unsigned long long, local);
  const int bins = num_classes * num_classes;
  for (int b = threadIdx.x; b < bins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t y = label[i];
    if (y == -1) continue;
    if (y < 0 || y >= num_classes) { atomicCAS(&bad[0], -1, y); continue; }
    const int32_t p = pred[i];
    if (p < 0 || p >= num_classes) { atomicCAS(&bad[1], INT_MIN, p); continue; }  // never write outside the bins
    atomicAdd(&local[y * num_classes + p], 1ull);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < bins; b += blockDim.x)
    if (local[b]) atomicAdd(&counts[b], local[b]);
}

// Fallback for very many classes: global atomics only.
__global__ void confusion_kernel_global(const int32_t* __restrict__ pred, const int32_t* __restrict__ label, int64_t n,
                                        int num_classes, unsigned long long* counts, int32_t* bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t y = label[i];
    if (y == -1) continue;
    if (y < 0 || y >= num_classes) { atomicCAS(&bad[0], -1, y); continue; }
    const int32_t p = pred[i];
    if (p < 0 || p >= num_classes) { atomicCAS(&bad[1], INT_MIN, p); continue; }
    atomicAdd(&counts[y * num_classes + p], 1ull);
  }
}
}  // namespace

void argmax_channels(const float* logits, int32_t* out, int64_t n, int64_t c, int64_t hw, cudaStream_t stream) {
  const int64_t total = n * hw;
  if (total == 0) return;
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>((total + threads - 1) / threads, 65535));
  launch<argmax_kernel>(blocks, threads, 0, stream)(logits, out, n, c, hw);
}

void confusion_accumulate(const int32_t* pred, const int32_t* label, int64_t n, int num_classes,
                          unsigned long long* counts, int32_t* bad, cudaStream_t stream) {
  if (n == 0) return;
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>((n + threads - 1) / threads, 1024));
  const size_t shared = size_t(num_classes) * num_classes * sizeof(unsigned long long);
  if (shared <= 32 * 1024) {
    launch<confusion_kernel>(blocks, threads, shared, stream)(pred, label, n, num_classes, counts, bad);
  } else {
    launch<confusion_kernel_global>(blocks, threads, 0, stream)(pred, label, n, num_classes, counts, bad);
  }
}

}  // namespace rdd::kernels
