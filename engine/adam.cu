// The fused Adam update (see adam.h): w, g, m, v are flat f32 arrays of length n.
#include "engine/cuda_check.h"
#include "engine/adam_cuda.h"
#include "engine/cuda_launch.h"

namespace rdd::cuda {

namespace {
__global__ void adam_update_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                                   float* __restrict__ v, int64_t n, float beta1, float beta2, float step_size,
                                   float sqrt_bc2, float eps) {
  RDD_GRID_LOOP(i, n) {
    const float gi = g[i];
    const float mi = beta1 * m[i] + (1.f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps);
  }
}
}  // namespace

void adam_update(float* w, const float* g, float* m, float* v, int64_t n, float beta1, float beta2, float step_size,
                 float sqrt_bc2, float eps, cudaStream_t stream) {
  if (n == 0) return;
  launch<adam_update_kernel>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(w, g, m, v, n, beta1, beta2, step_size,
                                                                               sqrt_bc2, eps);
}

}  // namespace rdd::cuda
