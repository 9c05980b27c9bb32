#include "engine/sgd.h"
#include "engine/sgd_cuda.h"

#include <cmath>

#include "engine/op_profile.h"
#include "engine/thread_pool.h"

#if RDD_WITH_CUDA
#include "engine/cuda_context.h"
#endif

namespace rdd {

Sgd::Sgd(ParamStore& store, SgdOptions options) : store_(store), options_(options) {
  RDD_CHECK(store.materialized(), "Sgd: the parameter store must be materialized first");
  RDD_CHECK(options.momentum >= 0 && options.weight_decay >= 0, "Sgd: momentum ", options.momentum,
            " and weight decay ", options.weight_decay, " must be ≥ 0");
  momentum_ = Tensor::zeros({store.padded_count()}, DType::f32, store.device());
}

void Sgd::step(double lr) {
  RDD_CHECK(momentum_.device() == store_.device(), "Sgd: parameters moved to ", store_.device().str(),
            " after the optimizer was made on ", momentum_.device().str());
  OpScope profile("optimizer: fused SGD", store_.device(), 0, 5.0 * double(momentum_.nbytes()));  // w g m in, w m out
  sgd_update(store_.flat_values().data<float>(), store_.flat_grads().data<float>(), momentum_.data<float>(),
             momentum_.numel(), store_.device(), lr, options_);
  ++steps_;
}

void sgd_update(float* w, const float* g, float* m, int64_t n, Device device, double lr, const SgdOptions& o) {
  if (device.is_cuda()) {
#if RDD_WITH_CUDA
    cuda::sgd_update(w, g, m, n, float(lr), float(o.momentum), float(o.weight_decay), o.nesterov,
                        cuda_context(device.index).compute_stream());
#endif
    return;
  }
  const float lr_f = float(lr), mom = float(o.momentum), wd = float(o.weight_decay);
  const bool nesterov = o.nesterov;
  parallel_for(0, n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float gi = g[i] + wd * w[i];
      m[i] = mom * m[i] + gi;
      w[i] -= lr_f * (nesterov ? gi + mom * m[i] : m[i]);
    }
  }, 1 << 16);
}

double poly_lr(double base, int64_t iter, int64_t max_iter, double power) {
  RDD_CHECK(max_iter > 0 && iter >= 1 && iter <= max_iter, "poly_lr: iteration ", iter, " outside [1, ", max_iter, "]");
  return base * std::pow(1.0 - double(iter - 1) / double(max_iter), power);
}

}  // namespace rdd
