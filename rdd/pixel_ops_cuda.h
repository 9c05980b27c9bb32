// CUDA launchers behind rdd/pixel_ops.h (pixel_ops.cu); f32, raw device pointers, all on `stream`.
// Internal to rdd/: callers use pixel_ops.h. C++17 (included by a .cu file).
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::method::cuda {

// z: (N, C, HW); y: (N, HW) i32; ce, gtp: (N, HW). counters[0] += valid pixels; counters[1] = min flat index
// of a bad label (left as is when none). counters: 2 × u64 on the device, initialised by the caller.
void ce_stats(const float* z, const int32_t* y, float* ce, float* gtp, int64_t n, int c, int64_t hw, int ignore,
              unsigned long long* counters, cudaStream_t stream);
// coef: (n_pix); cw: (num_weights) or null; pw: (n_pix) or null.
void ce_coefficients(const int32_t* y, const float* cw, int num_weights, const float* pw, float* coef, int64_t n_pix,
                     int ignore, cudaStream_t stream);
// dz: (N, C, HW) = scale·coef·(softmax(z) − onehot(y)).
void ce_grad(const float* z, const int32_t* y, const float* coef, float scale, float* dz, int64_t n, int c,
             int64_t hw, int ignore, cudaStream_t stream);
// t, s: (outer, len, inner); kl: (outer·inner); grad: (outer, len, inner) or null.
void kl_rows(const float* t, const float* s, float inv_temperature, int64_t outer, int64_t len, int64_t inner,
             float grad_scale, float* kl, float* grad, cudaStream_t stream);
// out[0] = Σ a·b (b null: Σ a), deterministic; partials: scratch of kDotMaxBlocks doubles.
constexpr int kDotMaxBlocks = 1024;
void dot(const float* a, const float* b, int64_t n, double* partials, double* out, cudaStream_t stream);
void exp_neg(const float* x, float* y, int64_t n, cudaStream_t stream);
void axpy(float* dst, const float* src, float alpha, int64_t n, cudaStream_t stream);
// hist[256] += counts of the byte at `shift` of key(x) (detail::float_order_key in pixel_ops.h) over the elements whose key matches prefix under mask.
void radix_histogram(const float* x, int64_t n, uint32_t prefix, uint32_t mask, int shift, unsigned long long* hist,
                     cudaStream_t stream);
// sel: (n_pix) 0/1; gt_t may be null (mode 3 = ohem). mode: 0 xor, 1 or, 2 and, 3 ohem.
void tse_selection(const float* gt_s, float thr_s, const float* gt_t, float thr_t, const int32_t* y, int ignore,
                   int mode, float* sel, int64_t n_pix, cudaStream_t stream);

}  // namespace rdd::method::cuda
#endif
