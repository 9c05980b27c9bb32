// Batched matrix products on tensors: the similarity maps and contrast logits of the KD methods
// (rdd/kd_methods.h) and the discriminator's attention go through this one op.
//
//   C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]      b = 0 .. batch−1, row-major matrices
//
//   op(A[b]) is m×k: A[b] is stored (m, k), or (k, m) when trans_a; likewise op(B[b]) is k×n.
//   A[b] starts at element b·stride_a of `a` (stride 0: one A shared by every batch), B and C likewise.
//
//   // sim (N, P, P) = Fᵀ F for F (N, C, P):
//   batched_gemm(f, f, sim, {.batch = N, .m = P, .n = P, .k = C, .trans_a = true,
//                            .stride_a = C * P, .stride_b = C * P, .stride_c = P * P});
//
// CPU: BLAS (single-threaded), batches spread over the thread pool; f32 and f64. CUDA (f32): cuBLAS
// (cublasSgemmStridedBatched, no TF32: the default math mode), on the compute stream. The emulated
// device has no cuBLAS: there the same CPU product runs in stream order on the device's memory
// (engine/emu_device.h enqueue_host_work), like the emulated cuDNN convolutions.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace rdd::layers {

struct GemmShape {
  int64_t batch = 1, m = 1, n = 1, k = 1;
  bool trans_a = false, trans_b = false;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // elements between consecutive batches
};

// a, b, c: contiguous tensors of one float dtype on one device, large enough for every batch (checked).
// c is written in place (beta = 0: its old contents are ignored, NaN included).
void batched_gemm(const Tensor& a, const Tensor& b, Tensor& c, const GemmShape& s, double alpha = 1.0,
                  double beta = 0.0);

// The FLOPs of one call (2 per multiply-add): for `rdd bench --ops` and the terms' own counts.
double gemm_flops(const GemmShape& s);

}  // namespace rdd::layers
