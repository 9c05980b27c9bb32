// CUDA kernels behind rdd/kd_ops.h (f32): one thread per row, per pixel or per element, grid-stride
// loops, the per-row math of kd_math.h (the CPU reference runs the same functions).
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda_check.h"
#include "engine/cuda_launch.h"
#include "rdd/kd_math.h"
#include "rdd/kd_ops_cuda.h"

namespace rdd::method::cuda {

namespace {

__global__ void l2norm_rows_kernel(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ norm,
                                   int64_t rows, int64_t len, int64_t inner, float eps) {
  RDD_GRID_LOOP(r, rows) norm[r] = kd_math::l2norm_row_forward(x, y, kd_math::row_base(r, len, inner), len, inner, eps);
}

__global__ void l2norm_rows_backward_kernel(const float* __restrict__ dy, const float* __restrict__ y,
                                            const float* __restrict__ norm, float* __restrict__ dx, int64_t rows,
                                            int64_t len, int64_t inner, float eps) {
  RDD_GRID_LOOP(r, rows)
  kd_math::l2norm_row_backward(dy, y, dx, kd_math::row_base(r, len, inner), len, inner, norm[r], eps);
}

__global__ void softmax_rows_kernel(const float* __restrict__ x, float* __restrict__ p, int64_t rows, int64_t len,
                                    int64_t inner, float inv_t) {
  RDD_GRID_LOOP(r, rows) kd_math::softmax_row_forward(x, p, kd_math::row_base(r, len, inner), len, inner, inv_t);
}

__global__ void softmax_rows_backward_kernel(const float* __restrict__ dp, const float* __restrict__ p,
                                             float* __restrict__ dx, int64_t rows, int64_t len, int64_t inner,
                                             float inv_t) {
  RDD_GRID_LOOP(r, rows) kd_math::softmax_row_backward(dp, p, dx, kd_math::row_base(r, len, inner), len, inner, inv_t);
}

__global__ void pearson_rows_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ r,
                                    float* __restrict__ ga, int64_t rows, int64_t len, int64_t inner, float eps,
                                    float grad_scale) {
  RDD_GRID_LOOP(row, rows)
  r[row] = kd_math::pearson_row(a, b, ga, kd_math::row_base(row, len, inner), len, inner, eps, grad_scale);
}

__global__ void channel_mean_square_kernel(const float* __restrict__ f, float* __restrict__ a, int64_t n, int64_t c,
                                           int64_t hw) {
  // f: (N, C, HW); a: (N, HW)
  RDD_GRID_LOOP(i, n * hw) {
    const float* x = f + (i / hw) * c * hw + i % hw;
    float s = 0.f;
    for (int64_t k = 0; k < c; ++k) s += x[k * hw] * x[k * hw];
    a[i] = s / float(c);
  }
}

__global__ void channel_mean_square_backward_kernel(const float* __restrict__ da, const float* __restrict__ f,
                                                    float* __restrict__ df, int64_t n, int64_t c, int64_t hw) {
  const float k2 = 2.f / float(c);
  RDD_GRID_LOOP(i, n * c * hw) df[i] = k2 * f[i] * da[(i / (c * hw)) * hw + i % hw];
}

__global__ void swap_leading_dims_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t a, int64_t b,
                                         int64_t r) {
  // x: (A, B, R) → y: (B, A, R); i runs over y.
  RDD_GRID_LOOP(i, a * b * r) {
    const int64_t e = i % r, ja = (i / r) % a, jb = i / (r * a);
    y[i] = x[(ja * b + jb) * r + e];
  }
}

__global__ void nearest_labels_kernel(const int32_t* __restrict__ in, int32_t* __restrict__ out, int64_t n, int64_t H,
                                      int64_t W, int64_t h, int64_t w) {
  RDD_GRID_LOOP(i, n * h * w) {
    const int64_t x = i % w, y = (i / w) % h, img = i / (h * w);
    out[i] = in[(img * H + kd_math::nearest_source(y, H, h)) * W + kd_math::nearest_source(x, W, w)];
  }
}

__global__ void avg_pool_ceil_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t H,
                                     int64_t W, int k) {
  const int64_t oh = (H + k - 1) / k, ow = (W + k - 1) / k;
  RDD_GRID_LOOP(i, planes * oh * ow) {
    const int64_t j = i % ow, r0 = (i / ow) % oh, pl = i / (oh * ow);
    const int64_t he = (r0 * k + k < H ? r0 * k + k : H), we = (j * k + k < W ? j * k + k : W);
    float s = 0.f;
    for (int64_t r = r0 * k; r < he; ++r)
      for (int64_t c = j * k; c < we; ++c) s += x[(pl * H + r) * W + c];
    y[i] = s / float((he - r0 * k) * (we - j * k));
  }
}

__global__ void avg_pool_ceil_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx, int64_t planes,
                                              int64_t H, int64_t W, int k) {
  const int64_t oh = (H + k - 1) / k, ow = (W + k - 1) / k;
  RDD_GRID_LOOP(e, planes * H * W) {
    const int64_t c = e % W, r = (e / W) % H, pl = e / (H * W);
    const int64_t i = r / k, j = c / k;
    const int64_t he = (i * k + k < H ? i * k + k : H), we = (j * k + k < W ? j * k + k : W);
    dx[e] = dy[(pl * oh + i) * ow + j] / float((he - i * k) * (we - j * k));
  }
}

__global__ void one_hot_kernel(const int32_t* __restrict__ labels, float* __restrict__ out, int64_t np, int64_t k) {
  RDD_GRID_LOOP(e, np * k) out[e] = labels[e / k] == int32_t(e % k) ? 1.f : 0.f;
}

__global__ void divide_columns_kernel(const float* __restrict__ x, const float* __restrict__ d, float* __restrict__ y,
                                      int64_t n, int64_t r, int64_t k, float eps) {
  RDD_GRID_LOOP(e, n * r * k) y[e] = x[e] / (d[(e / (r * k)) * k + e % k] + eps);
}

__global__ void center_cosine_kernel(const float* __restrict__ f, const float* __restrict__ ctr,
                                     const int32_t* __restrict__ labels, float* __restrict__ cos, int64_t n, int64_t c,
                                     int64_t p, int64_t classes) {
  RDD_GRID_LOOP(i, n * p) {
    const int y = labels[i];
    cos[i] = (y >= 0 && y < classes)
                 ? kd_math::cosine_pixel<float>(f, ctr, nullptr, nullptr, (i / p) * c * p + i % p, c, p, 1e-8f, 1.f)
                 : 1.f;
  }
}

__global__ void center_cosine_backward_kernel(const float* __restrict__ dcos, const float* __restrict__ f,
                                              const float* __restrict__ ctr, const int32_t* __restrict__ labels,
                                              float* __restrict__ gf, float* __restrict__ gc, int64_t n, int64_t c,
                                              int64_t p, int64_t classes) {
  RDD_GRID_LOOP(i, n * p) {
    const int64_t base = (i / p) * c * p + i % p;
    const int y = labels[i];
    if (y >= 0 && y < classes) {
      kd_math::cosine_pixel<float>(f, ctr, gf, gc, base, c, p, 1e-8f, dcos[i]);
    } else {
      for (int64_t k = 0; k < c; ++k) gf[base + k * p] = gc[base + k * p] = 0.f;
    }
  }
}

__global__ void leaky_relu_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n, float slope) {
  RDD_GRID_LOOP(i, n) y[i] = x[i] > 0.f ? x[i] : slope * x[i];
}

__global__ void leaky_relu_backward_kernel(const float* __restrict__ dy, const float* __restrict__ x,
                                           float* __restrict__ dx, int64_t n, float slope) {
  RDD_GRID_LOOP(i, n) dx[i] = x[i] > 0.f ? dy[i] : slope * dy[i];
}

__global__ void gather_pixels_kernel(const float* __restrict__ f, const int64_t* __restrict__ idx,
                                     float* __restrict__ rows, int64_t m, int64_t d, int64_t p) {
  RDD_GRID_LOOP(e, m * d) {
    const int64_t i = e / d, k = e % d, at = idx[i];
    rows[e] = f[(at / p) * d * p + k * p + at % p];
  }
}

__global__ void scatter_pixels_kernel(const float* __restrict__ rows, const int64_t* __restrict__ idx,
                                      float* __restrict__ out, int64_t m, int64_t d, int64_t p) {
  RDD_GRID_LOOP(e, m * d) {
    const int64_t i = e / d, k = e % d, at = idx[i];
    out[(at / p) * d * p + k * p + at % p] = rows[e];
  }
}

__global__ void take_rows_kernel(const float* __restrict__ src, const int64_t* __restrict__ idx,
                                 float* __restrict__ out, int64_t m, int64_t d) {
  RDD_GRID_LOOP(e, m * d) out[e] = src[idx[e / d] * d + e % d];
}

__global__ void put_rows_kernel(float* __restrict__ dst, const int64_t* __restrict__ idx,
                                const float* __restrict__ rows, int64_t m, int64_t d) {
  RDD_GRID_LOOP(e, m * d) dst[idx[e / d] * d + e % d] = rows[e];
}

__global__ void class_means_kernel(const float* __restrict__ f, const int32_t* __restrict__ labels,
                                   const int64_t* __restrict__ image, const int64_t* __restrict__ cls,
                                   float* __restrict__ out, int64_t entries, int64_t d, int64_t p) {
  // One thread per (entry, channel); the pixel loop reads one contiguous row of f.
  RDD_GRID_LOOP(e, entries * d) {
    const int64_t i = e / d, k = e % d, b = image[i];
    const int32_t c = int32_t(cls[i]);
    const float* row = f + (b * d + k) * p;
    const int32_t* y = labels + b * p;
    float s = 0.f;
    int64_t count = 0;
    for (int64_t q = 0; q < p; ++q)
      if (y[q] == c) {
        s += row[q];
        ++count;
      }
    out[e] = count > 0 ? s / float(count) : 0.f;
  }
}

}  // namespace

void leaky_relu(const float* x, float* y, int64_t n, float slope, cudaStream_t stream) {
  if (n == 0) return;
  launch<leaky_relu_kernel>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(x, y, n, slope);
}

void leaky_relu_backward(const float* dy, const float* x, float* dx, int64_t n, float slope, cudaStream_t stream) {
  if (n == 0) return;
  launch<leaky_relu_backward_kernel>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(dy, x, dx, n, slope);
}

void gather_pixels(const float* f, const int64_t* idx, float* rows, int64_t m, int64_t d, int64_t p, cudaStream_t stream) {
  if (m * d == 0) return;
  launch<gather_pixels_kernel>(grid_stride_blocks(m * d), kThreadsPerBlock, 0, stream)(f, idx, rows, m, d, p);
}

void scatter_pixels(const float* rows, const int64_t* idx, float* out, int64_t m, int64_t d, int64_t p,
                    cudaStream_t stream) {
  if (m * d == 0) return;
  launch<scatter_pixels_kernel>(grid_stride_blocks(m * d), kThreadsPerBlock, 0, stream)(rows, idx, out, m, d, p);
}

void take_rows(const float* src, const int64_t* idx, float* out, int64_t m, int64_t d, cudaStream_t stream) {
  if (m * d == 0) return;
  launch<take_rows_kernel>(grid_stride_blocks(m * d), kThreadsPerBlock, 0, stream)(src, idx, out, m, d);
}

void put_rows(float* dst, const int64_t* idx, const float* rows, int64_t m, int64_t d, cudaStream_t stream) {
  if (m * d == 0) return;
  launch<put_rows_kernel>(grid_stride_blocks(m * d), kThreadsPerBlock, 0, stream)(dst, idx, rows, m, d);
}

void class_means(const float* f, const int32_t* labels, const int64_t* image, const int64_t* cls, float* out,
                 int64_t entries, int64_t d, int64_t p, cudaStream_t stream) {
  if (entries * d == 0) return;
  launch<class_means_kernel>(grid_stride_blocks(entries * d), kThreadsPerBlock, 0, stream)(f, labels, image, cls, out, entries, d, p);
}

void l2norm_rows(const float* x, float* y, float* norm, int64_t outer, int64_t len, int64_t inner, float eps,
                 cudaStream_t stream) {
  const int64_t rows = outer * inner;
  if (rows == 0) return;
  launch<l2norm_rows_kernel>(grid_stride_blocks(rows), kThreadsPerBlock, 0, stream)(x, y, norm, rows, len, inner, eps);
}

void l2norm_rows_backward(const float* dy, const float* y, const float* norm, float* dx, int64_t outer, int64_t len,
                          int64_t inner, float eps, cudaStream_t stream) {
  const int64_t rows = outer * inner;
  if (rows == 0) return;
  launch<l2norm_rows_backward_kernel>(grid_stride_blocks(rows), kThreadsPerBlock, 0, stream)(dy, y, norm, dx, rows, len, inner, eps);
}

void softmax_rows(const float* x, float* p, int64_t outer, int64_t len, int64_t inner, float inv_t, cudaStream_t stream) {
  const int64_t rows = outer * inner;
  if (rows == 0) return;
  launch<softmax_rows_kernel>(grid_stride_blocks(rows), kThreadsPerBlock, 0, stream)(x, p, rows, len, inner, inv_t);
}

void softmax_rows_backward(const float* dp, const float* p, float* dx, int64_t outer, int64_t len, int64_t inner,
                           float inv_t, cudaStream_t stream) {
  const int64_t rows = outer * inner;
  if (rows == 0) return;
  launch<softmax_rows_backward_kernel>(grid_stride_blocks(rows), kThreadsPerBlock, 0, stream)(dp, p, dx, rows, len, inner, inv_t);
}

void pearson_rows(const float* a, const float* b, float* r, float* ga, int64_t outer, int64_t len, int64_t inner,
                  float eps, float grad_scale, cudaStream_t stream) {
  const int64_t rows = outer * inner;
  if (rows == 0) return;
  launch<pearson_rows_kernel>(grid_stride_blocks(rows), kThreadsPerBlock, 0, stream)(a, b, r, ga, rows, len, inner, eps, grad_scale);
}

void channel_mean_square(const float* f, float* a, int64_t n, int64_t c, int64_t hw, cudaStream_t stream) {
  if (n * hw == 0) return;
  launch<channel_mean_square_kernel>(grid_stride_blocks(n * hw), kThreadsPerBlock, 0, stream)(f, a, n, c, hw);
}

void channel_mean_square_backward(const float* da, const float* f, float* df, int64_t n, int64_t c, int64_t hw,
                                  cudaStream_t stream) {
  if (n * c * hw == 0) return;
  launch<channel_mean_square_backward_kernel>(grid_stride_blocks(n * c * hw), kThreadsPerBlock, 0, stream)(da, f, df, n, c, hw);
}

void swap_leading_dims(const float* x, float* y, int64_t a, int64_t b, int64_t r, cudaStream_t stream) {
  if (a * b * r == 0) return;
  launch<swap_leading_dims_kernel>(grid_stride_blocks(a * b * r), kThreadsPerBlock, 0, stream)(x, y, a, b, r);
}

void nearest_labels(const int32_t* in, int32_t* out, int64_t n, int64_t H, int64_t W, int64_t h, int64_t w,
                    cudaStream_t stream) {
  if (n * h * w == 0) return;
  launch<nearest_labels_kernel>(grid_stride_blocks(n * h * w), kThreadsPerBlock, 0, stream)(in, out, n, H, W, h, w);
}

void avg_pool_ceil(const float* x, float* y, int64_t planes, int64_t H, int64_t W, int k, cudaStream_t stream) {
  const int64_t out = planes * ((H + k - 1) / k) * ((W + k - 1) / k);
  if (out == 0) return;
  launch<avg_pool_ceil_kernel>(grid_stride_blocks(out), kThreadsPerBlock, 0, stream)(x, y, planes, H, W, k);
}

void avg_pool_ceil_backward(const float* dy, float* dx, int64_t planes, int64_t H, int64_t W, int k, cudaStream_t stream) {
  if (planes * H * W == 0) return;
  launch<avg_pool_ceil_backward_kernel>(grid_stride_blocks(planes * H * W), kThreadsPerBlock, 0, stream)(dy, dx, planes, H, W, k);
}

void one_hot(const int32_t* labels, float* out, int64_t n, int64_t p, int64_t k, cudaStream_t stream) {
  if (n * p * k == 0) return;
  launch<one_hot_kernel>(grid_stride_blocks(n * p * k), kThreadsPerBlock, 0, stream)(labels, out, n * p, k);
}

void divide_columns(const float* x, const float* d, float* y, int64_t n, int64_t r, int64_t k, float eps,
                    cudaStream_t stream) {
  if (n * r * k == 0) return;
  launch<divide_columns_kernel>(grid_stride_blocks(n * r * k), kThreadsPerBlock, 0, stream)(x, d, y, n, r, k, eps);
}

void center_cosine(const float* f, const float* ctr, const int32_t* labels, float* cos, int64_t n, int64_t c,
                   int64_t p, int64_t classes, cudaStream_t stream) {
  if (n * p == 0) return;
  launch<center_cosine_kernel>(grid_stride_blocks(n * p), kThreadsPerBlock, 0, stream)(f, ctr, labels, cos, n, c, p, classes);
}

void center_cosine_backward(const float* dcos, const float* f, const float* ctr, const int32_t* labels, float* gf,
                            float* gc, int64_t n, int64_t c, int64_t p, int64_t classes, cudaStream_t stream) {
  if (n * p == 0) return;
  launch<center_cosine_backward_kernel>(grid_stride_blocks(n * p), kThreadsPerBlock, 0, stream)(dcos, f, ctr, labels, gf, gc, n, c, p,
                                                                              classes);
}

}  // namespace rdd::method::cuda
