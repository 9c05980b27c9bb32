// The fused SGD update (see sgd.h): w, g, m are flat f32 arrays of length n.
#include "engine/cuda_check.h"
#include "engine/cuda_launch.h"
#include "engine/sgd_cuda.h"

namespace rdd::cuda {

namespace {
__global__ void sgd_update_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m, int64_t n,
                                  float lr, float momentum, float weight_decay, bool nesterov) {
  RDD_GRID_LOOP(i, n) {
    const float gi = g[i] + weight_decay * w[i];
    const float mi = momentum * m[i] + gi;
    m[i] = mi;
    w[i] -= lr * (nesterov ? gi + momentum * mi : mi);
  }
}
}  // namespace

void sgd_update(float* w, const float* g, float* m, int64_t n, float lr, float momentum, float weight_decay,
                bool nesterov, cudaStream_t stream) {
  if (n == 0) return;
  launch<sgd_update_kernel>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(w, g, m, n, lr, momentum, weight_decay, nesterov);
}

}  // namespace rdd::cuda
