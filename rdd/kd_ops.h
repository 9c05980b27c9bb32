// Building blocks of the comparison KD methods (rdd/kd_methods.h): row normalisation, attention maps,
// softmax and Pearson correlation along rows, pooling, label resizing and IFVD's class-centre cosines.
// Each dispatches on its tensors' device: a CPU reference templated on f32/f64 (finite-difference checks
// run in double) and CUDA kernels in f32 (kd_ops.cu); both call the same per-row math (kd_math.h).
//
// Rows: a tensor viewed as (outer, len, inner) has outer·inner rows of `len` elements with stride
// `inner` (kd_math.h). Channels of an NCHW map: (N, C, H·W); positions of each (n, c) plane: (N·C, H·W, 1).
// The big products (similarity maps, contrasts) are layers::batched_gemm (layers/matmul.h).
// GPU kernels: one thread per row (or pixel, or element), grid-stride loops — correct first; the long rows
// of a few operations (AT's per-image normalisation, DIST's per-class correlation) leave most of a GPU idle
// and are the first candidates for a block-per-row version, as kl_rows has.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace rdd::method {

struct RowView {
  int64_t outer = 1, len = 1, inner = 1;
  int64_t rows() const { return outer * inner; }
};

// F.normalize(x, p=2, dim): y = x / max(‖row‖, eps). norm: (rows) ‖row‖, for the backward.
struct L2Normalized {
  Tensor y, norm;
};
L2Normalized l2_normalize_rows(const Tensor& x, RowView v, double eps = 1e-12);
Tensor l2_normalize_rows_backward(const Tensor& dy, const L2Normalized& n, RowView v, double eps = 1e-12);

// The attention map of AT / DSD: a[n, p] = mean_c f[n, c, p]². f: (N, C, H, W) → (N, H·W).
Tensor channel_mean_square(const Tensor& f);
// df = 2·f·da / C. da: (N, H·W) → (N, C, H, W).
Tensor channel_mean_square_backward(const Tensor& da, const Tensor& f);

// p = softmax(x·inv_t) along rows, and its backward dx = inv_t·p⊙(dp − ⟨p, dp⟩).
Tensor softmax_rows(const Tensor& x, RowView v, double inv_t);
Tensor softmax_rows_backward(const Tensor& dp, const Tensor& p, RowView v, double inv_t);

// DIST's Pearson correlation of each row of a with the same row of b (kd_math::pearson_row).
struct PearsonRows {
  Tensor r;     // (rows)
  Tensor grad;  // a's shape: grad_scale·Σ_rows dr/da; undefined unless need_grad
};
PearsonRows pearson_rows(const Tensor& a, const Tensor& b, RowView v, double eps, double grad_scale, bool need_grad);

// (A, B, R) → (B, A, R) (a copy): class-major ↔ image-major.
Tensor swap_leading_dims(const Tensor& x, int64_t a, int64_t b, int64_t r);

// Labels (N, H, W) i32 → (N, h, w) by PyTorch's nearest interpolation (F.interpolate(mode='nearest') on
// the float labels, as IFVD and CIRKD resize them to the feature size).
Tensor nearest_labels(const Tensor& labels, int64_t h, int64_t w);

// nn.AvgPool2d(k, stride k, padding 0, ceil_mode=True): windows clipped to the input, averaged over the
// elements inside. x: (N, C, H, W) → (N, C, ceil(H/k), ceil(W/k)).
Tensor avg_pool_ceil(const Tensor& x, int k);
Tensor avg_pool_ceil_backward(const Tensor& dy, int64_t h, int64_t w, int k);

// One-hot of labels (N, P) i32: (N, P, K) in `dtype`, 1 where label == k (ignored / other values: a zero row).
Tensor one_hot_pixels(const Tensor& labels, int64_t classes, DType dtype);
// x[n, r, k] / (d[n, k] + eps), x: (N, R, K), d: (N, K) (a new tensor).
Tensor divide_columns(const Tensor& x, const Tensor& d, double eps);

// IFVD: cos[n, p] = cosine(f[n, :, p], ctr[n, :, p]) (kd_math::cosine_pixel, eps 1e-8) where labels[n, p]
// is a class in [0, classes), and 1 (the cosine of f with itself) elsewhere. f, ctr: (N, C, P); labels (N, P).
Tensor center_cosine(const Tensor& f, const Tensor& ctr, const Tensor& labels, int64_t classes);
// Gradients of Σ dcos·cos: into f (gf) and ctr (gc), zero at pixels without a class.
struct CenterCosineGrads {
  Tensor gf, gc;
};
CenterCosineGrads center_cosine_backward(const Tensor& dcos, const Tensor& f, const Tensor& ctr, const Tensor& labels,
                                         int64_t classes);

// nn.LeakyReLU(slope): y = x > 0 ? x : slope·x; backward from the input (dx = dy·(x > 0 ? 1 : slope)).
Tensor leaky_relu(const Tensor& x, double slope);
Tensor leaky_relu_backward(const Tensor& dy, const Tensor& x, double slope);

// Rows of pixels and of memory queues (CIRKD). idx: i64 on the tensors' device.
// gather_pixels: rows[m, :] = f[idx[m] / P, :, idx[m] % P] — f (N, D, P) → rows (M, D).
Tensor gather_pixels(const Tensor& f, const Tensor& idx);
// The reverse: (N, D, P) zeros except out[idx[m] / P, :, idx[m] % P] = rows[m, :] (indices distinct).
Tensor scatter_pixels(const Tensor& rows, const Tensor& idx, int64_t n, int64_t d, int64_t p);
// take_rows: out[m, :] = src[idx[m], :] — src (R, D) → (M, D).
Tensor take_rows(const Tensor& src, const Tensor& idx);
// put_rows: dst[idx[m], :] = rows[m, :] in place (indices distinct) — dst (R, D), rows (M, D).
void put_rows(Tensor& dst, const Tensor& idx, const Tensor& rows);
// class_means: out[e, :] = mean of f[b_e, :, p] over the pixels p with labels[b_e, p] == c_e, for the entries
// e = (b_e, c_e) given as image[e], cls[e] (i64); a class without pixels gives zeros. f (N, D, P), labels (N, P) i32.
Tensor class_means(const Tensor& f, const Tensor& labels, const Tensor& image, const Tensor& cls);

}  // namespace rdd::method
