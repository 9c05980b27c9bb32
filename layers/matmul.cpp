// Batched GEMM (layers/matmul.h): BLAS on the CPU, cuBLAS on the GPU, the CPU product in stream order on
// the emulated device.
#include "layers/matmul.h"

#include <cblas.h>

#include <climits>

#include "engine/error.h"
#include "engine/op_profile.h"
#include "engine/thread_pool.h"
#include "layers/conv2d.h"

#if RDD_WITH_CUDA
#include "engine/cuda_check.h"
#include "engine/cuda_context.h"
#if RDD_CUDA_EMULATED
#include "engine/emu_device.h"
#endif
#endif

namespace rdd::layers {

namespace {

void gemm_one(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A, const float* B,
              float beta, float* C) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, A, int(ta ? m : k), B, int(tb ? k : n), beta, C, int(n));
}
void gemm_one(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* A, const double* B,
              double beta, double* C) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, A, int(ta ? m : k), B, int(tb ? k : n), beta, C, int(n));
}

// The CPU product over raw pointers (also what the emulated device runs in stream order).
template <class T>
void batched_gemm_cpu(const T* a, const T* b, T* c, const GemmShape& s, double alpha, double beta) {
  cpu_blas_single_threaded();
  auto one = [&](int64_t i) {
    T* ci = c + i * s.stride_c;
    if (beta == 0) {  // BLAS multiplies C by 0, which keeps a NaN: clear it first (beta 0 ignores C)
      for (int64_t e = 0; e < s.m * s.n; ++e) ci[e] = T(0);
    }
    if (s.k == 0) {
      for (int64_t e = 0; e < s.m * s.n; ++e) ci[e] = T(beta) * ci[e];
      return;
    }
    gemm_one(s.trans_a, s.trans_b, s.m, s.n, s.k, T(alpha), a + i * s.stride_a, b + i * s.stride_b, T(beta), ci);
  };
  parallel_for(0, s.batch, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) one(i);
  });
}

int64_t span(int64_t batch, int64_t stride, int64_t rows, int64_t cols) {
  return batch == 0 ? 0 : (batch - 1) * stride + rows * cols;
}

}  // namespace

double gemm_flops(const GemmShape& s) { return 2.0 * double(s.batch) * double(s.m) * double(s.n) * double(s.k); }

void batched_gemm(const Tensor& a, const Tensor& b, Tensor& c, const GemmShape& s, double alpha, double beta) {
  const char* who = "batched_gemm";
  RDD_CHECK(a.defined() && b.defined() && c.defined(), who, ": undefined operand");
  RDD_CHECK(a.dtype() == b.dtype() && a.dtype() == c.dtype() && (a.dtype() == DType::f32 || a.dtype() == DType::f64),
            who, ": operands ", a.desc(), ", ", b.desc(), ", ", c.desc(), " must share one float dtype (f32 or f64)");
  require_same_device(a, b, who);
  require_same_device(a, c, who);
  RDD_CHECK(s.batch >= 0 && s.m >= 0 && s.n >= 0 && s.k >= 0 && s.stride_a >= 0 && s.stride_b >= 0 && s.stride_c >= 0,
            who, ": negative size or stride (batch ", s.batch, ", m ", s.m, ", n ", s.n, ", k ", s.k, ")");
  RDD_CHECK(span(s.batch, s.stride_a, s.m, s.k) <= a.numel() && span(s.batch, s.stride_b, s.k, s.n) <= b.numel() &&
                span(s.batch, s.stride_c, s.m, s.n) <= c.numel(),
            who, ": batch ", s.batch, " of ", s.m, "x", s.k, " · ", s.k, "x", s.n, " (strides ", s.stride_a, ", ",
            s.stride_b, ", ", s.stride_c, ") does not fit into ", a.desc(), ", ", b.desc(), ", ", c.desc());
  RDD_CHECK(s.batch <= 1 || s.stride_c >= s.m * s.n, who, ": batches of C overlap (stride_c ", s.stride_c, " < ", s.m,
            "x", s.n, "): accumulate over a loop of calls with beta = 1 instead");
  RDD_CHECK(s.m <= INT_MAX && s.n <= INT_MAX && s.k <= INT_MAX && s.batch <= INT_MAX, who, ": sizes beyond int");
  if (s.batch == 0 || s.m == 0 || s.n == 0) return;
  OpScope profile("gemm (KD similarity / contrast)", a.device(), gemm_flops(s),
                  double(a.dtype() == DType::f64 ? 8 : 4) * double(s.batch) * double(s.m * s.k + s.k * s.n + s.m * s.n));
#if RDD_WITH_CUDA
  if (a.device().is_cuda()) {
    RDD_CHECK(a.dtype() == DType::f32, who, ": the GPU path is f32 (got ", a.desc(), ")");
#if RDD_CUDA_EMULATED
    // No cuBLAS on the emulated device: the CPU product, in stream order, on the device's memory.
    const Tensor ka = a, kb = b, kc = c;
    emu::enqueue_host_work(cuda_context(a.device().index).compute_stream(), [ka, kb, kc, s, alpha, beta]() {
      batched_gemm_cpu<float>(ka.data<float>(), kb.data<float>(), kc.data<float>(), s, alpha, beta);
    });
#else
    CudaContext& ctx = cuda_context(a.device().index);
    const float fa = float(alpha), fb = float(beta);
    // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B first, with n and m swapped.
    RDD_CUBLAS_CHECK(cublasSgemmStridedBatched(
        ctx.cublas(), s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(s.n), int(s.m),
        int(s.k), &fa, b.data<float>(), int(s.trans_b ? s.k : s.n), (long long)s.stride_b, a.data<float>(),
        int(s.trans_a ? s.m : s.k), (long long)s.stride_a, &fb, c.data<float>(), int(s.n), (long long)s.stride_c,
        int(s.batch)));
#endif
    return;
  }
#endif
  if (a.dtype() == DType::f64) batched_gemm_cpu<double>(a.data<double>(), b.data<double>(), c.data<double>(), s, alpha, beta);
  else batched_gemm_cpu<float>(a.data<float>(), b.data<float>(), c.data<float>(), s, alpha, beta);
}

}  // namespace rdd::layers
