// Checked calls into CUDA, cuDNN, cuBLAS and NCCL. Only for CUDA builds (RDD_WITH_CUDA=1); the emulated
// build (RDD_CUDA_EMULATED=1) has the CUDA runtime only.
//
//   RDD_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream));
//   RDD_CUDNN_CHECK(cudnnBackendFinalize(desc));
//
// A failure throws rdd::Error naming the call, the file and line, the library's own words, and what
// the user can do about it (out of memory → smaller batch or crop; illegal address → a bug, rerun with
// CUDA_LAUNCH_BLOCKING=1 and report it).
#pragma once

#if !RDD_WITH_CUDA
#error "engine/cuda_check.h is only for CUDA builds"
#endif

#include <cuda_runtime.h>
#if !RDD_CUDA_EMULATED
#include <cublas_v2.h>
#include <cudnn.h>
#include <nccl.h>
#endif

namespace rdd::detail {
void check_cuda(cudaError_t status, const char* call, const char* file, int line);
#if !RDD_CUDA_EMULATED
void check_cudnn(cudnnStatus_t status, const char* call, const char* file, int line);
void check_cublas(cublasStatus_t status, const char* call, const char* file, int line);
void check_nccl(ncclResult_t status, const char* call, const char* file, int line);
#endif
}  // namespace rdd::detail

#define RDD_CUDA_CHECK(call) ::rdd::detail::check_cuda((call), #call, __FILE__, __LINE__)
#if !RDD_CUDA_EMULATED  // the emulated device (RDD_CUDA=EMULATE) has no cuDNN, cuBLAS or NCCL
#define RDD_CUDNN_CHECK(call) ::rdd::detail::check_cudnn((call), #call, __FILE__, __LINE__)
#define RDD_CUBLAS_CHECK(call) ::rdd::detail::check_cublas((call), #call, __FILE__, __LINE__)
#define RDD_NCCL_CHECK(call) ::rdd::detail::check_nccl((call), #call, __FILE__, __LINE__)
#endif
// After a kernel launch: catches bad launch configurations at the launch site.
#define RDD_CUDA_CHECK_LAUNCH() RDD_CUDA_CHECK(cudaGetLastError())
