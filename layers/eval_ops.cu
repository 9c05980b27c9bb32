// GPU side of eval_ops.h: one thread per output element (grid-stride), f32.
#include "engine/cuda_launch.h"
#include "engine/cuda_check.h"
#include "engine/cuda_context.h"

namespace rdd::layers::kernels {

namespace {
constexpr int kThreads = kThreadsPerBlock;
inline unsigned blocks_for(int64_t n) { return grid_stride_blocks(n); }  // engine/cuda_launch.h
cudaStream_t stream(int device) { return rdd::cuda_context(device).compute_stream(); }

// x, y: (planes, h, w)
__global__ void flip_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t total, int64_t w) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % w, row = i / w;
    y[i] = x[row * w + (w - 1 - j)];
  }
}

// x: (planes, H, W) → y: (planes, h, w) from (top, left); outside reads 0.
__global__ void crop_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t H, int64_t W,
                            int64_t top, int64_t left, int64_t h, int64_t w) {
  const int64_t total = planes * h * w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % w, r = (i / w) % h, p = i / (w * h);
    const int64_t sy = top + r, sx = left + j;
    y[i] = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? x[(p * H + sy) * W + sx] : 0.f;
  }
}

// acc: (planes, H, W) += win: (planes, h, w) at (top, left), clipped. Each acc element is written by one thread.
__global__ void add_window_kernel(float* acc, const float* __restrict__ win, int64_t planes, int64_t H, int64_t W,
                                  int64_t top, int64_t left, int64_t h, int64_t w) {
  const int64_t total = planes * h * w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % w, r = (i / w) % h, p = i / (w * h);
    const int64_t y = top + r, x = left + j;
    if (y >= 0 && y < H && x >= 0 && x < W) acc[(p * H + y) * W + x] += win[i];
  }
}

// x, y: (n, c, hw); one thread per pixel.
__global__ void softmax_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n, int64_t c, int64_t hw) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * hw; i += int64_t(gridDim.x) * blockDim.x) {
    const float* px = x + (i / hw) * c * hw + (i % hw);
    float* py = y + (i / hw) * c * hw + (i % hw);
    float m = px[0];
    for (int64_t k = 1; k < c; ++k) m = fmaxf(m, px[k * hw]);
    float s = 0.f;
    for (int64_t k = 0; k < c; ++k) s += (py[k * hw] = expf(px[k * hw] - m));
    const float inv = 1.f / s;
    for (int64_t k = 0; k < c; ++k) py[k * hw] *= inv;
  }
}

// x: (planes, hw) /= map: (hw)
__global__ void divide_kernel(float* x, const float* __restrict__ map, int64_t planes, int64_t hw) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < planes * hw; i += int64_t(gridDim.x) * blockDim.x)
    x[i] /= map[i % hw];
}
}  // namespace

void flip_width(int device, const float* x, float* y, int64_t planes, int64_t h, int64_t w) {
  const int64_t total = planes * h * w;
  if (total == 0) return;
  launch<flip_kernel>(blocks_for(total), kThreads, 0, stream(device))(x, y, total, w);
}

void crop_window(int device, const float* x, float* y, int64_t planes, int64_t H, int64_t W, int64_t top, int64_t left, int64_t h,
                 int64_t w) {
  launch<crop_kernel>(blocks_for(planes * h * w), kThreads, 0, stream(device))(x, y, planes, H, W, top, left, h, w);
}

void add_window(int device, float* acc, const float* win, int64_t planes, int64_t H, int64_t W, int64_t top, int64_t left,
                int64_t h, int64_t w) {
  launch<add_window_kernel>(blocks_for(planes * h * w), kThreads, 0, stream(device))(acc, win, planes, H, W, top, left, h, w);
}

void softmax_channels(int device, const float* x, float* y, int64_t n, int64_t c, int64_t hw) {
  if (n * hw == 0) return;
  launch<softmax_kernel>(blocks_for(n * hw), kThreads, 0, stream(device))(x, y, n, c, hw);
}

void divide_by_map(int device, float* x, const float* map, int64_t planes, int64_t hw) {
  if (planes * hw == 0) return;
  launch<divide_kernel>(blocks_for(planes * hw), kThreads, 0, stream(device))(x, map, planes, hw);
}

}  // namespace rdd::layers::kernels
