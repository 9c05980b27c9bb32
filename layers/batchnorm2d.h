// 2-D batch normalisation (PyTorch's nn.BatchNorm2d semantics), split for SyncBN.
//
//   x, y, dy, dx (N, C, H, W)   gamma (weight), beta (bias), running_mean, running_var (C)
//
// Training: per-channel batch statistics over (N, H, W) — mean and the BIASED variance normalise;
// the running statistics move by `momentum` towards the batch mean and the UNBIASED variance
// (var·M/(M−1), M = N·H·W summed over all ranks), num_batches_tracked += 1.
// Eval: the running statistics normalise; nothing is cached; backward is refused.
//
// Each pass is three steps, so a communicator can make the statistics global (SyncBN):
//   forward:  (1) local per-channel partial sums → (2) reducer(partial_sums) → (3) normalise + affine
//   backward: (1) local Σdy, Σdy·x̂              → (2) reducer(partial_sums) → (3) dx
//
// Partial sums, forward: a (3, C) tensor on x's device in x's dtype,
//   row 0: Σ (x − shift_c)   row 1: Σ (x − shift_c)²   row 2: the element count M (same in every column).
// The variance is E[(x−s)²] − E[x−s]² (the "shifted data" algorithm): with a shift s close to the mean
// nothing cancels catastrophically in f32. Without a reducer, shift_c is the channel's first element
// x[0, c, 0, 0] (within a few standard deviations of the mean, whatever the mean is). With a reducer the
// shift must be the same on every rank, so it is running_mean[c] at the start of the step: every rank
// applies the same all-reduced update, and checkpoints restore the same values everywhere. (A channel
// whose mean is far from its running mean in units of its standard deviation — e.g. the very first
// SyncBN step on activations with |mean| ≫ std — loses relative variance precision ≈ 2⁻²⁴·(mean−shift)²/var.)
// Partial sums, backward: (2, C): row 0 Σdy, row 1 Σdy·x̂. The parameter gradients dgamma/dbeta take
// the LOCAL sums (before the reducer): the data-parallel gradient all-reduce adds them up later.
//
// On the GPU the reducer is called from the host while the partial sums are still being produced on the
// device's compute stream: it must order its work after that stream (run on it, or wait on an event
// recorded on it) and finish — or order later work on the compute stream after it — before returning.
//
// Statistics are accumulated in f32 on the GPU (per-thread sums, then fixed-order tree reductions:
// warp shuffles within a block, a second kernel over the blocks of each channel — deterministic) and
// in double on the CPU. CPU: f32 and f64, NCHW; CUDA: f32 NCHW, our own kernels (no cuDNN batch norm).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/params.h"
#include "engine/tensor.h"
#include "layers/module.h"

namespace rdd::layers {

using StatsReducer = std::function<void(Tensor& partial_sums)>;

// What a training forward hands to its backward: (C) tensors on x's device in x's dtype.
struct BatchNormSaved {
  Tensor mean;    // batch mean (global under SyncBN)
  Tensor invstd;  // 1 / sqrt(biased batch variance + eps)
  Tensor count;   // M, the number of elements per channel (global under SyncBN)
  bool defined() const { return mean.defined(); }
};

// Training forward: returns y; updates running_mean/running_var in place (momentum ≤ 0: no update);
// fills *saved for the backward when saved is non-null.
Tensor batchnorm2d_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                                 Tensor& running_var, double eps, double momentum, BatchNormSaved* saved,
                                 const StatsReducer& reducer = {});
// Eval forward: y = (x − running_mean) / sqrt(running_var + eps) · gamma + beta.
Tensor batchnorm2d_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                                const Tensor& running_var, double eps);

struct BatchNorm2dGrads {
  Tensor dx, dgamma, dbeta;
};
BatchNorm2dGrads batchnorm2d_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                      const BatchNormSaved& saved, const StatsReducer& reducer = {});
// The accumulating form the module uses: dgamma += Σdy·x̂, dbeta += Σdy (local sums); returns dx.
Tensor batchnorm2d_backward_accumulate(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                       const BatchNormSaved& saved, Tensor& dgamma, Tensor& dbeta,
                                       const StatsReducer& reducer = {});

class BatchNorm2d : public Module {
 public:
  // Registers "<name>.weight", "<name>.bias" (parameters), "<name>.running_mean", "<name>.running_var"
  // (f32 buffers) and "<name>.num_batches_tracked" (i64 buffer, shape ()).
  BatchNorm2d(ParamStore& store, const std::string& name, int channels, double eps = 1e-5, double momentum = 0.1);

  Tensor forward(const Tensor& x);    // train: batch statistics, running update, caches x; eval: running stats
  Tensor backward(const Tensor& dy);  // train only, after forward; accumulates into weight/bias grads

  // SyncBN hook (see the top of this file for the partial-sum layouts). Default: none (local BN).
  void set_stats_reducer(std::function<void(Tensor& partial_sums)> reducer);

  // PyTorch's initial state: weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked 0.
  // A freshly materialized store holds zeros everywhere, so models call this after materialize()
  // (or load weights).
  void reset_parameters();

  Param* weight() const { return weight_; }
  Param* bias() const { return bias_; }
  Param* running_mean() const { return running_mean_; }
  Param* running_var() const { return running_var_; }
  Param* num_batches_tracked() const { return num_batches_tracked_; }
  int channels() const { return channels_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  int channels_;
  double eps_, momentum_;
  Param* weight_ = nullptr;
  Param* bias_ = nullptr;
  Param* running_mean_ = nullptr;
  Param* running_var_ = nullptr;
  Param* num_batches_tracked_ = nullptr;
  StatsReducer reducer_;
  Tensor cached_x_;  // (N, C, H, W), train mode only, until backward
  BatchNormSaved saved_;
};

}  // namespace rdd::layers
