// The fused SGD update (see sgd.h): w, g, m are flat f32 arrays of length n.
#include "engine/cuda_check.h"
#include "engine/cuda_launch.h"

namespace rdd::kernels {

namespace {
__global__ void sgd_update_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m, int64_t n,
                                  float lr, float momentum, float weight_decay, bool nesterov) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
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
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>((n + threads - 1) / threads, 4096));
  launch<sgd_update_kernel>(blocks, threads, 0, stream)(w, g, m, n, lr, momentum, weight_decay, nesterov);
}

}  // namespace rdd::kernels
