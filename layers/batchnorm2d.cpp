// BatchNorm2d: argument checks, dispatch on device, the CPU reference (f32/f64), and the module.
#include "layers/batchnorm2d.h"
#include "layers/batchnorm2d_cuda.h"
#include "layers/batchnorm_math.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/op_profile.h"
#include "engine/thread_pool.h"

namespace rdd::layers {

namespace {

struct BnGeom {
  int64_t N, C, HW;
  int64_t count() const { return N * HW; }
};

void require_channel_vector(const char* who, const Tensor& x, const Tensor& v, const char* what) {
  RDD_CHECK(v.defined(), who, ": ", what, " is undefined (input ", x.desc(), ")");
  require_same_device(x, v, who);
  RDD_CHECK(v.dtype() == x.dtype(), who, ": ", what, " ", v.desc(), " and input ", x.desc(), " differ in dtype");
  RDD_CHECK(v.ndim() == 1 && v.size(0) == x.size(1), who, ": input ", x.desc(), " has ", x.size(1), " channels but ",
            what, " ", v.desc(), " expects ", v.ndim() == 1 ? v.size(0) : v.numel());
}

BnGeom check_input(const char* who, const Tensor& x) {
  RDD_CHECK(x.defined(), who, ": undefined input");
  require_ndim(x, 4, who, "input x (N, C, H, W)");
  require_layout(x, Layout::NCHW, who, "input x");
  if (x.device().is_cpu()) {
    RDD_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, who, ": the CPU path takes f32 or f64, got input ",
              x.desc());
  } else {
    RDD_CHECK(x.dtype() == DType::f32, who, ": the CUDA path takes f32 (bf16/f16 not implemented yet), got input ",
              x.desc());
  }
  RDD_CHECK(x.size(1) >= 1, who, ": input ", x.desc(), " has no channels");
  return {x.size(0), x.size(1), x.size(2) * x.size(3)};
}

void check_partial(const char* who, const Tensor& p, const Tensor& x, int64_t rows) {
  const Shape want{rows, x.size(1)};
  RDD_CHECK(p.defined() && p.shape() == want && p.dtype() == x.dtype() && p.device() == x.device(), who,
            ": the stats reducer must leave the partial sums a ", dtype_name(x.dtype()), shape_str(want), " tensor on ",
            x.device().str(), ", got ", p.defined() ? p.desc() : std::string("(undefined)"));
}

void check_saved(const char* who, const Tensor& x, const BatchNormSaved& saved) {
  RDD_CHECK(saved.defined(), who, ": no saved statistics (backward before a training-mode forward)");
  require_channel_vector(who, x, saved.mean, "saved mean");
  require_channel_vector(who, x, saved.invstd, "saved invstd");
  require_channel_vector(who, x, saved.count, "saved count");
}

// ------------------------------------------------------------------------------------------------
// CPU reference (double accumulation)
// ------------------------------------------------------------------------------------------------

// shift (C) = running_mean or x[0, c, 0, 0]; partial (3, C): Σ(x − shift), Σ(x − shift)², M.
template <class T>
void partial_sums_cpu(const Tensor& x, const Tensor& running_mean, bool shift_from_x, Tensor& shift, Tensor& partial,
                      const BnGeom& g) {
  const T* xp = x.data<T>();
  const T* rm = running_mean.data<T>();
  T* sp = shift.data<T>();
  T* pp = partial.data<T>();
  parallel_for(0, g.C, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      sp[c] = shift_from_x ? xp[c * g.HW] : rm[c];
      const double s = double(sp[c]);
      double s1 = 0, s2 = 0;
      for (int64_t n = 0; n < g.N; ++n) {
        const T* plane = xp + (n * g.C + c) * g.HW;
        for (int64_t i = 0; i < g.HW; ++i) {
          const double d = double(plane[i]) - s;
          s1 += d;
          s2 += d * d;
        }
      }
      pp[c] = T(s1);
      pp[g.C + c] = T(s2);
      pp[2 * g.C + c] = T(g.count());
    }
  });
}

template <class T>
void normalize_train_cpu(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& partial,
                         const Tensor& shift, Tensor& running_mean, Tensor& running_var, double eps, double momentum,
                         BatchNormSaved& saved, Tensor& y, const BnGeom& g) {
  const T* pp = partial.data<T>();
  const T* sp = shift.data<T>();
  T* rm = running_mean.data<T>();
  T* rv = running_var.data<T>();
  T* mean = saved.mean.data<T>();
  T* invstd = saved.invstd.data<T>();
  T* count = saved.count.data<T>();
  for (int64_t c = 0; c < g.C; ++c) {
    const double M = double(pp[2 * g.C + c]);
    const double dm = double(pp[c]) / M;                                  // E[x − shift]
    const double var = std::max(double(pp[g.C + c]) / M - dm * dm, 0.0);  // biased
    const double mu = double(sp[c]) + dm;
    mean[c] = T(mu);
    invstd[c] = T(1.0 / std::sqrt(var + eps));
    count[c] = T(M);
    if (momentum > 0) {
      rm[c] = T((1 - momentum) * double(rm[c]) + momentum * mu);
      rv[c] = T((1 - momentum) * double(rv[c]) + momentum * var * M / (M - 1));
    }
  }
  const T* xp = x.data<T>();
  const T* gp = gamma.data<T>();
  const T* bp = beta.data<T>();
  T* yp = y.data<T>();
  parallel_for(0, g.N * g.C, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t c = i % g.C;
      const T m = mean[c], scale = gp[c] * invstd[c], b = bp[c];
      const T* xs = xp + i * g.HW;
      T* ys = yp + i * g.HW;
      for (int64_t j = 0; j < g.HW; ++j) ys[j] = (xs[j] - m) * scale + b;
    }
  });
}

template <class T>
void forward_eval_cpu(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                      const Tensor& running_var, double eps, Tensor& y, const BnGeom& g) {
  const T* xp = x.data<T>();
  const T* gp = gamma.data<T>();
  const T* bp = beta.data<T>();
  const T* rm = running_mean.data<T>();
  const T* rv = running_var.data<T>();
  T* yp = y.data<T>();
  parallel_for(0, g.N * g.C, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t c = i % g.C;
      const T m = rm[c], scale = batchnorm_math::eval_scale(gp[c], rv[c], eps), b = bp[c];
      const T* xs = xp + i * g.HW;
      T* ys = yp + i * g.HW;
      for (int64_t j = 0; j < g.HW; ++j) ys[j] = batchnorm_math::normalize(xs[j], m, scale, b);
    }
  });
}

// sums (2, C) = [Σdy, Σdy·x̂]; dgamma += Σdy·x̂, dbeta += Σdy.
template <class T>
void backward_sums_cpu(const Tensor& dy, const Tensor& x, const BatchNormSaved& saved, Tensor& sums, Tensor& dgamma,
                       Tensor& dbeta, const BnGeom& g) {
  const T* dyp = dy.data<T>();
  const T* xp = x.data<T>();
  const T* mean = saved.mean.data<T>();
  const T* invstd = saved.invstd.data<T>();
  T* sp = sums.data<T>();
  T* dgp = dgamma.data<T>();
  T* dbp = dbeta.data<T>();
  parallel_for(0, g.C, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double m = double(mean[c]), is = double(invstd[c]);
      double sdy = 0, sdyx = 0;
      for (int64_t n = 0; n < g.N; ++n) {
        const int64_t off = (n * g.C + c) * g.HW;
        for (int64_t i = 0; i < g.HW; ++i) {
          const double d = double(dyp[off + i]);
          sdy += d;
          sdyx += d * (double(xp[off + i]) - m) * is;
        }
      }
      sp[c] = T(sdy);
      sp[g.C + c] = T(sdyx);
      dbp[c] += T(sdy);
      dgp[c] += T(sdyx);
    }
  });
}

// dx = gamma·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M)
template <class T>
void backward_dx_cpu(const Tensor& dy, const Tensor& x, const Tensor& gamma, const BatchNormSaved& saved,
                     const Tensor& sums, Tensor& dx, const BnGeom& g) {
  const T* dyp = dy.data<T>();
  const T* xp = x.data<T>();
  const T* gp = gamma.data<T>();
  const T* mean = saved.mean.data<T>();
  const T* invstd = saved.invstd.data<T>();
  const T* count = saved.count.data<T>();
  const T* sp = sums.data<T>();
  T* dxp = dx.data<T>();
  parallel_for(0, g.N * g.C, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t c = i % g.C;
      const T m = mean[c], is = invstd[c], a = gp[c] * is;
      const T b1 = batchnorm_math::sum_over_count(sp[c], count[c]), b2 = batchnorm_math::sum_over_count(sp[g.C + c], count[c]);
      const T* xs = xp + i * g.HW;
      const T* ds = dyp + i * g.HW;
      T* out = dxp + i * g.HW;
      for (int64_t j = 0; j < g.HW; ++j) out[j] = batchnorm_math::grad_input(ds[j], xs[j], m, is, a, b1, b2);
    }
  });
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Functional API
// ------------------------------------------------------------------------------------------------

Tensor batchnorm2d_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                                 Tensor& running_var, double eps, double momentum, BatchNormSaved* saved,
                                 const StatsReducer& reducer) {
  const char* who = "batchnorm2d";
  const BnGeom g = check_input(who, x);
  require_channel_vector(who, x, gamma, "weight (gamma)");
  require_channel_vector(who, x, beta, "bias (beta)");
  require_channel_vector(who, x, running_mean, "running_mean");
  require_channel_vector(who, x, running_var, "running_var");
  RDD_CHECK(eps > 0, who, ": eps must be > 0, got ", eps);
  RDD_CHECK(momentum <= 1, who, ": momentum must be ≤ 1, got ", momentum);
  // With a reducer (SyncBN) the statistics are over every rank's batch, so one value per channel on
  // this rank is fine (as PyTorch's SyncBatchNorm allows); the global count is checked after the
  // reduction on the CPU (on the GPU that would cost a device sync per layer).
  RDD_CHECK(reducer || g.count() > 1, who, ": training needs more than one value per channel, input ", x.desc(),
            " has N·H·W = ", g.count());
  const Device dev = x.device();
  OpScope profile(reducer ? "batchnorm2d forward (synced)" : "batchnorm2d forward", dev, 0, 2.0 * x.nbytes());
  Tensor partial = Tensor::empty({3, g.C}, x.dtype(), dev);
  Tensor shift = Tensor::empty({g.C}, x.dtype(), dev);
  const bool shift_from_x = !reducer;  // a reducer needs a shift every rank shares: running_mean
  BatchNormSaved local;
  BatchNormSaved& s = saved ? *saved : local;
  s.mean = Tensor::empty({g.C}, x.dtype(), dev);
  s.invstd = Tensor::empty({g.C}, x.dtype(), dev);
  s.count = Tensor::empty({g.C}, x.dtype(), dev);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  if (dev.is_cuda()) {
#if RDD_WITH_CUDA
    cuda::batchnorm2d_partial_sums(x, running_mean, shift_from_x, shift, partial);
    if (reducer) {
      reducer(partial);
      check_partial(who, partial, x, 3);
    }
    cuda::batchnorm2d_normalize_train(x, gamma, beta, partial, shift, running_mean, running_var, eps, momentum, s,
                                             y);
#endif
    return y;
  }
  const bool f64 = x.dtype() == DType::f64;
  if (f64)
    partial_sums_cpu<double>(x, running_mean, shift_from_x, shift, partial, g);
  else
    partial_sums_cpu<float>(x, running_mean, shift_from_x, shift, partial, g);
  if (reducer) {
    reducer(partial);
    check_partial(who, partial, x, 3);
    const double global_count = f64 ? partial.data<double>()[2 * g.C] : double(partial.data<float>()[2 * g.C]);
    RDD_CHECK(global_count > 1, who, ": training needs more than one value per channel over all ranks, got ",
              global_count);
  }
  if (f64)
    normalize_train_cpu<double>(x, gamma, beta, partial, shift, running_mean, running_var, eps, momentum, s, y, g);
  else
    normalize_train_cpu<float>(x, gamma, beta, partial, shift, running_mean, running_var, eps, momentum, s, y, g);
  return y;
}

Tensor batchnorm2d_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                                const Tensor& running_var, double eps) {
  const char* who = "batchnorm2d (eval)";
  const BnGeom g = check_input(who, x);
  require_channel_vector(who, x, gamma, "weight (gamma)");
  require_channel_vector(who, x, beta, "bias (beta)");
  require_channel_vector(who, x, running_mean, "running_mean");
  require_channel_vector(who, x, running_var, "running_var");
  RDD_CHECK(eps > 0, who, ": eps must be > 0, got ", eps);
  OpScope profile("batchnorm2d forward (eval)", x.device(), 0, 2.0 * x.nbytes());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::batchnorm2d_forward_eval(x, gamma, beta, running_mean, running_var, eps, y);
#endif
    return y;
  }
  if (x.dtype() == DType::f64)
    forward_eval_cpu<double>(x, gamma, beta, running_mean, running_var, eps, y, g);
  else
    forward_eval_cpu<float>(x, gamma, beta, running_mean, running_var, eps, y, g);
  return y;
}

Tensor batchnorm2d_backward_accumulate(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                       const BatchNormSaved& saved, Tensor& dgamma, Tensor& dbeta,
                                       const StatsReducer& reducer) {
  const char* who = "batchnorm2d backward";
  const BnGeom g = check_input(who, x);
  RDD_CHECK(dy.defined(), who, ": undefined gradient dy");
  require_same_device(dy, x, who);
  RDD_CHECK(dy.dtype() == x.dtype() && dy.shape() == x.shape() && dy.layout() == x.layout(), who, ": gradient ",
            dy.desc(), " must match the input ", x.desc());
  require_channel_vector(who, x, gamma, "weight (gamma)");
  require_channel_vector(who, x, dgamma, "weight gradient");
  require_channel_vector(who, x, dbeta, "bias gradient");
  check_saved(who, x, saved);
  OpScope profile(reducer ? "batchnorm2d backward (synced)" : "batchnorm2d backward", x.device(), 0, 3.0 * x.nbytes());
  Tensor sums = Tensor::empty({2, g.C}, x.dtype(), x.device());
  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::batchnorm2d_backward_sums(dy, x, saved, sums, dgamma, dbeta);
    if (reducer) {
      reducer(sums);
      check_partial(who, sums, x, 2);
    }
    cuda::batchnorm2d_backward_dx(dy, x, gamma, saved, sums, dx);
#endif
    return dx;
  }
  const bool f64 = x.dtype() == DType::f64;
  if (f64)
    backward_sums_cpu<double>(dy, x, saved, sums, dgamma, dbeta, g);
  else
    backward_sums_cpu<float>(dy, x, saved, sums, dgamma, dbeta, g);
  if (reducer) {
    reducer(sums);
    check_partial(who, sums, x, 2);
  }
  if (f64)
    backward_dx_cpu<double>(dy, x, gamma, saved, sums, dx, g);
  else
    backward_dx_cpu<float>(dy, x, gamma, saved, sums, dx, g);
  return dx;
}

BatchNorm2dGrads batchnorm2d_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                      const BatchNormSaved& saved, const StatsReducer& reducer) {
  RDD_CHECK(gamma.defined(), "batchnorm2d backward: undefined weight (gamma)");
  BatchNorm2dGrads grads;
  grads.dgamma = Tensor::zeros(gamma.shape(), gamma.dtype(), gamma.device());
  grads.dbeta = Tensor::zeros(gamma.shape(), gamma.dtype(), gamma.device());
  grads.dx = batchnorm2d_backward_accumulate(dy, x, gamma, saved, grads.dgamma, grads.dbeta, reducer);
  return grads;
}

// ------------------------------------------------------------------------------------------------
// Module
// ------------------------------------------------------------------------------------------------

BatchNorm2d::BatchNorm2d(ParamStore& store, const std::string& name, int channels, double eps, double momentum)
    : name_(name), channels_(channels), eps_(eps), momentum_(momentum) {
  RDD_CHECK(channels >= 1, "BatchNorm2d '", name, "': channels must be ≥ 1, got ", channels);
  RDD_CHECK(eps > 0 && momentum >= 0 && momentum <= 1, "BatchNorm2d '", name, "': eps ", eps,
            " must be > 0 and momentum ", momentum, " in [0, 1]");
  weight_ = store.add_parameter(name + ".weight", {channels});
  bias_ = store.add_parameter(name + ".bias", {channels});
  running_mean_ = store.add_buffer(name + ".running_mean", {channels});
  running_var_ = store.add_buffer(name + ".running_var", {channels});
  num_batches_tracked_ = store.add_buffer(name + ".num_batches_tracked", {}, DType::i64);
}

void BatchNorm2d::set_stats_reducer(std::function<void(Tensor& partial_sums)> reducer) {
  reducer_ = std::move(reducer);
}

void BatchNorm2d::reset_parameters() {
  RDD_CHECK(weight_->value.defined(), "BatchNorm2d '", name_,
            "': reset_parameters before the parameter store was materialized");
  weight_->value.fill_(1.0);
  bias_->value.fill_(0.0);
  running_mean_->value.fill_(0.0);
  running_var_->value.fill_(1.0);
  num_batches_tracked_->value.fill_(0.0);
}

namespace {
template <class F>
auto named_bn(const std::string& name, F&& f) -> decltype(f()) {
  return with_error_context("BatchNorm2d '" + name + "'", std::forward<F>(f));
}
}  // namespace

Tensor BatchNorm2d::forward(const Tensor& x) {
  RDD_CHECK(weight_->value.defined(), "BatchNorm2d '", name_,
            "': forward before the parameter store was materialized");
  const std::string label = op_profile_enabled() ? name_ + " forward" : std::string();  // bench --layers
  OpScope profile(label.c_str(), x.device(), 0, 2.0 * double(x.nbytes()), OpLevel::layer);
  if (!training()) {
    cached_x_ = Tensor();
    saved_ = BatchNormSaved();
    return named_bn(name_, [&] {
      return batchnorm2d_forward_eval(x, weight_->value, bias_->value, running_mean_->value, running_var_->value,
                                      eps_);
    });
  }
  Tensor y = named_bn(name_, [&] {
    return batchnorm2d_forward_train(x, weight_->value, bias_->value, running_mean_->value, running_var_->value, eps_,
                                     momentum_, &saved_, reducer_);
  });
  Tensor& counter = num_batches_tracked_->value;
  if (counter.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::increment_counter(counter);
#endif
  } else {
    counter.at<int64_t>(0) += 1;
  }
  cached_x_ = x;
  return y;
}

Tensor BatchNorm2d::backward(const Tensor& dy) {
  RDD_CHECK(training(), "BatchNorm2d '", name_, "': backward in eval mode (eval mode keeps no activations)");
  RDD_CHECK(cached_x_.defined() && saved_.defined(), "BatchNorm2d '", name_,
            "': backward without a preceding training-mode forward");
  const std::string label = op_profile_enabled() ? name_ + " backward" : std::string();
  OpScope profile(label.c_str(), dy.device(), 0, 3.0 * double(dy.nbytes()), OpLevel::layer);
  Tensor dx = named_bn(name_, [&] {
    return batchnorm2d_backward_accumulate(dy, cached_x_, weight_->value, saved_, weight_->grad, bias_->grad,
                                           reducer_);
  });
  cached_x_ = Tensor();
  saved_ = BatchNormSaved();
  return dx;
}

}  // namespace rdd::layers
