// BatchNorm2d on the GPU (batchnorm2d.cu): f32 NCHW on one GPU, arguments already checked by
// batchnorm2d.cpp. The statistics are split (partial sums → a reduction, SyncBN's all-reduce → the
// normalisation) so a communicator can reduce in between.
// Private to layers/: included by batchnorm2d.cpp and batchnorm2d.cu. C++17.
#pragma once

#if RDD_WITH_CUDA
#include "engine/tensor.h"
#include "layers/batchnorm2d.h"

namespace rdd::layers::cuda {

// Step 1 of the forward: shift (C) = running_mean (shift_from_x false) or x[0, c, 0, 0] (true), then
// partial (3, C) = [Σ(x − shift), Σ(x − shift)², M].
void batchnorm2d_partial_sums(const Tensor& x, const Tensor& running_mean, bool shift_from_x, Tensor& shift,
                                   Tensor& partial);
// Step 3: from the (reduced) partial sums and the shift, batch mean/invstd (→ saved), running update, y.
void batchnorm2d_normalize_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& partial,
                                      const Tensor& shift, Tensor& running_mean, Tensor& running_var, double eps,
                                      double momentum, BatchNormSaved& saved, Tensor& y);
void batchnorm2d_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                                   const Tensor& running_var, double eps, Tensor& y);
// Backward step 1: sums (2, C) = [Σdy, Σdy·x̂], and dgamma += row 1, dbeta += row 0.
void batchnorm2d_backward_sums(const Tensor& dy, const Tensor& x, const BatchNormSaved& saved, Tensor& sums,
                                    Tensor& dgamma, Tensor& dbeta);
// Backward step 3: dx from the (reduced) sums.
void batchnorm2d_backward_dx(const Tensor& dy, const Tensor& x, const Tensor& gamma, const BatchNormSaved& saved,
                                  const Tensor& sums, Tensor& dx);
// num_batches_tracked += 1 on the GPU (an i64 scalar).
void increment_counter(Tensor& counter);

}  // namespace rdd::layers::cuda
#endif
