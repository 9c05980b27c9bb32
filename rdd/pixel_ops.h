// The per-pixel building blocks of rdd's losses (rdd/losses.h composes them), each dispatching on the
// device of its tensors: a CPU reference templated on f32/f64 (so finite-difference checks run in double)
// and CUDA kernels in f32 (pixel_ops.cu).
//
// Conventions: logits are NCHW (N, C, H, W); labels (N, H, W) i32 with `ignore_index` marking ignored
// pixels; per-pixel maps are (N, H, W) in the logits' compute dtype (f32, or f64 on the CPU). A logit
// tensor in bf16/f16 is read through a conversion to f32 (compute_dtype_view); results are f32.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace rdd::method {

// logits as the loss computes them: f32/f64 unchanged, bf16/f16 converted to f32. Refuses non-float
// dtypes, f64 on the GPU and NHWC, naming `who`.
Tensor compute_dtype_view(const Tensor& logits, const char* who, const char* what);

// Softmax cross-entropy statistics of every pixel.
struct PixelCEStats {
  Tensor ce;          // (N, H, W): −log softmax(z)[y]; 0 at ignored pixels
  Tensor gt_prob;     // (N, H, W): softmax(z)[y]; 1 at ignored pixels (the released code's fill)
  int64_t num_valid;  // pixels whose label is not ignore_index
};
// logits: (N, C, H, W); labels: (N, H, W) i32. A label outside [0, C) that is not ignore_index is an
// error naming `who`, the value found and its position.
PixelCEStats pixel_ce_stats(const Tensor& logits, const Tensor& labels, int ignore_index, const char* who);

// Per-pixel CE coefficient: class_weights[y]·pixel_weights (either may be undefined = 1); 0 at ignored
// pixels. labels: (N, H, W) i32; class_weights: (C) any float dtype; pixel_weights: (N, H, W).
// Returns (N, H, W) in `dtype` on the labels' device.
Tensor ce_coefficients(const Tensor& labels, const Tensor& class_weights, const Tensor& pixel_weights,
                       int ignore_index, DType dtype, const char* who);

// d/dz of Σ_p scale·coef_p·CE_p: scale·coef_p·(softmax(z_p) − onehot(y_p)); 0 at ignored pixels.
// logits: (N, C, H, W); labels, coef: (N, H, W). Returns (N, C, H, W).
Tensor ce_logits_grad(const Tensor& logits, const Tensor& labels, const Tensor& coef, double scale,
                      int ignore_index);

// KL(p_t ‖ p_s) = Σ_j p_t,j (log p_t,j − log p_s,j) with p = softmax(z/T) along one axis of a tensor
// viewed as (outer, len, inner): the softmax runs over `len` (stride `inner`). Logit KD over classes is
// (N, C, H·W); channel-wise distillation over positions is (N·C, H·W, 1).
struct KLRows {
  Tensor kl;    // (outer·inner) per-row KL, in the compute dtype
  Tensor grad;  // student's shape: grad_scale·(p_s − p_t); undefined unless need_grad
};
KLRows kl_rows(const Tensor& teacher, const Tensor& student, double temperature, int64_t outer, int64_t len,
               int64_t inner, double grad_scale, bool need_grad);

// Σ x and Σ a·b over every element, accumulated in double (one device→host copy on the GPU).
double sum_all(const Tensor& x);
double dot_all(const Tensor& a, const Tensor& b);
// exp(−x), elementwise (a new tensor).
Tensor exp_neg(const Tensor& x);
// dst += alpha·src (same shape, dtype and device).
void axpy(Tensor& dst, const Tensor& src, double alpha);

// The k-th smallest (1-based, 1 ≤ k ≤ numel) of a float tensor. CPU: std::nth_element. GPU: a radix
// select over the order-preserving uint32 image of the f32 bit patterns (four 8-bit histogram passes),
// no sort.
double kth_smallest(const Tensor& values, int64_t k);

namespace detail {
// The order-preserving map of f32 values to uint32 keys used by the GPU radix select (negative values
// flip all bits, non-negative ones set the sign bit; −0 sorts just below +0), and its inverse.
uint32_t float_order_key(float f);
float float_from_order_key(uint32_t key);
// The radix select behind kth_smallest on the GPU, with the histogram pass supplied by the caller:
// histogram(prefix, mask, shift, hist) must set hist[b] to the number of elements whose key matches
// `prefix` under `mask` and whose byte at `shift` is b. Four passes, most significant byte first; returns
// the k-th smallest value (1-based). Host code, so the selection logic is tested without a GPU.
float radix_select(int64_t k, const std::function<void(uint32_t prefix, uint32_t mask, int shift,
                                                       std::vector<int64_t>& hist)>& histogram);
}  // namespace detail

// How TSE combines the student's and the teacher's hard masks.
enum class TseMode { xor_mode, or_mode, and_mode, ohem };
const char* tse_mode_name(TseMode m);
TseMode parse_tse_mode(const std::string& s);  // "xor", "or", "and", "ohem"

// Selected pixels as 0/1 weights (N, H, W) in the dtype of gt_student:
//   hard_X = valid ∧ (gt_X ≤ thr_X);  sel = hard_S ⊕ hard_T | hard_S ∨ hard_T | hard_S ∧ hard_T | hard_S.
// gt_teacher may be undefined for TseMode::ohem. Thresholds are compared in the maps' dtype.
Tensor tse_selection(const Tensor& gt_student, double thr_student, const Tensor& gt_teacher, double thr_teacher,
                     const Tensor& labels, int ignore_index, TseMode mode);

}  // namespace rdd::method
