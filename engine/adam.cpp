#include "engine/adam.h"

#include <cmath>

#include "engine/adam_cuda.h"
#include "engine/op_profile.h"
#include "engine/thread_pool.h"

#if RDD_WITH_CUDA
#include "engine/cuda_context.h"
#endif

namespace rdd {

Adam::Adam(ParamStore& store, AdamOptions options) : store_(store), options_(options) {
  RDD_CHECK(store.materialized(), "Adam: the parameter store must be materialized first");
  RDD_CHECK(options.lr > 0 && options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1 &&
                options.eps > 0,
            "Adam: lr ", options.lr, ", betas (", options.beta1, ", ", options.beta2, ") and eps ", options.eps,
            " out of range");
  m_ = Tensor::zeros({store.padded_count()}, DType::f32, store.device());
  v_ = Tensor::zeros({store.padded_count()}, DType::f32, store.device());
}

void Adam::step() {
  RDD_CHECK(m_.device() == store_.device(), "Adam: parameters moved to ", store_.device().str(),
            " after the optimizer was made on ", m_.device().str());
  OpScope profile("optimizer: Adam (discriminator)", store_.device(), 0, 7.0 * double(m_.nbytes()));
  ++steps_;
  adam_update(store_.flat_values().data<float>(), store_.flat_grads().data<float>(), m_.data<float>(), v_.data<float>(),
              m_.numel(), store_.device(), options_, steps_);
}

void adam_update(float* w, const float* g, float* m, float* v, int64_t n, Device device, const AdamOptions& o, int64_t t) {
  RDD_CHECK(t >= 1, "adam_update: step ", t, " must be ≥ 1");
  const double bc1 = 1.0 - std::pow(o.beta1, double(t)), bc2 = 1.0 - std::pow(o.beta2, double(t));
  const float b1 = float(o.beta1), b2 = float(o.beta2), step_size = float(o.lr / bc1),
              sqrt_bc2 = float(std::sqrt(bc2)), eps = float(o.eps);
  if (device.is_cuda()) {
#if RDD_WITH_CUDA
    cuda::adam_update(w, g, m, v, n, b1, b2, step_size, sqrt_bc2, eps, cuda_context(device.index).compute_stream());
#endif
    return;
  }
  parallel_for(0, n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      m[i] = b1 * m[i] + (1.f - b1) * g[i];
      v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
      w[i] -= step_size * m[i] / (std::sqrt(v[i]) / sqrt_bc2 + eps);
    }
  }, 1 << 16);
}

}  // namespace rdd
