// CUDA launchers behind rdd/kd_ops.h (kd_ops.cu); f32, raw device pointers, all on `stream`.
// Internal to rdd/: callers use kd_ops.h. C++17 (included by a .cu file).
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::method::cuda {

// Row ops over (outer, len, inner) views (kd_math.h).
void l2norm_rows(const float* x, float* y, float* norm, int64_t outer, int64_t len, int64_t inner, float eps,
                 cudaStream_t stream);
void l2norm_rows_backward(const float* dy, const float* y, const float* norm, float* dx, int64_t outer, int64_t len,
                          int64_t inner, float eps, cudaStream_t stream);
void softmax_rows(const float* x, float* p, int64_t outer, int64_t len, int64_t inner, float inv_t, cudaStream_t stream);
void softmax_rows_backward(const float* dp, const float* p, float* dx, int64_t outer, int64_t len, int64_t inner,
                           float inv_t, cudaStream_t stream);
// r: (rows); ga: like a, or null.
void pearson_rows(const float* a, const float* b, float* r, float* ga, int64_t outer, int64_t len, int64_t inner,
                  float eps, float grad_scale, cudaStream_t stream);

// f: (N, C, HW) → a: (N, HW); backward df = 2·f·da/C.
void channel_mean_square(const float* f, float* a, int64_t n, int64_t c, int64_t hw, cudaStream_t stream);
void channel_mean_square_backward(const float* da, const float* f, float* df, int64_t n, int64_t c, int64_t hw,
                                  cudaStream_t stream);

// (A, B, R) → (B, A, R).
void swap_leading_dims(const float* x, float* y, int64_t a, int64_t b, int64_t r, cudaStream_t stream);
// labels (N, H, W) → (N, h, w), PyTorch's nearest.
void nearest_labels(const int32_t* in, int32_t* out, int64_t n, int64_t H, int64_t W, int64_t h, int64_t w,
                    cudaStream_t stream);
// x (planes, H, W) → y (planes, ceil(H/k), ceil(W/k)), and back.
void avg_pool_ceil(const float* x, float* y, int64_t planes, int64_t H, int64_t W, int k, cudaStream_t stream);
void avg_pool_ceil_backward(const float* dy, float* dx, int64_t planes, int64_t H, int64_t W, int k, cudaStream_t stream);
// labels (N, P) → (N, P, K) one-hot.
void one_hot(const int32_t* labels, float* out, int64_t n, int64_t p, int64_t k, cudaStream_t stream);
// y[n, r, k] = x[n, r, k] / (d[n, k] + eps).
void divide_columns(const float* x, const float* d, float* y, int64_t n, int64_t r, int64_t k, float eps,
                    cudaStream_t stream);
// IFVD cosines (kd_ops.h center_cosine): f, ctr (N, C, P), labels (N, P), cos (N, P). Backward: gf, gc (N, C, P).
void center_cosine(const float* f, const float* ctr, const int32_t* labels, float* cos, int64_t n, int64_t c,
                   int64_t p, int64_t classes, cudaStream_t stream);
void center_cosine_backward(const float* dcos, const float* f, const float* ctr, const int32_t* labels, float* gf,
                            float* gc, int64_t n, int64_t c, int64_t p, int64_t classes, cudaStream_t stream);

void leaky_relu(const float* x, float* y, int64_t n, float slope, cudaStream_t stream);
void leaky_relu_backward(const float* dy, const float* x, float* dx, int64_t n, float slope, cudaStream_t stream);
// CIRKD rows (kd_ops.h): f (N, D, P), rows (M, D), idx (M) i64.
void gather_pixels(const float* f, const int64_t* idx, float* rows, int64_t m, int64_t d, int64_t p, cudaStream_t stream);
void scatter_pixels(const float* rows, const int64_t* idx, float* out, int64_t m, int64_t d, int64_t p,
                    cudaStream_t stream);  // out zeroed by the caller
void take_rows(const float* src, const int64_t* idx, float* out, int64_t m, int64_t d, cudaStream_t stream);
void put_rows(float* dst, const int64_t* idx, const float* rows, int64_t m, int64_t d, cudaStream_t stream);
void class_means(const float* f, const int32_t* labels, const int64_t* image, const int64_t* cls, float* out,
                 int64_t entries, int64_t d, int64_t p, cudaStream_t stream);

}  // namespace rdd::method::cuda
#endif
