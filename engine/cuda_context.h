// Per-GPU context: the streams, library handles and workspace every CUDA kernel and library call
// on that GPU shares. Only for CUDA builds.
//
//   CudaContext& ctx = cuda_context(t.device().index);
//   my_kernel<<<grid, block, 0, ctx.compute_stream()>>>(...);
//
// All compute for a device runs in order on its compute stream; NCCL runs on the communication
// stream. The cuDNN and cuBLAS handles are created on first use (creating them costs ~100 ms and
// hundreds of MiB, which a CPU-only path or a data-only tool should not pay).
#pragma once

#if !RDD_WITH_CUDA
#error "engine/cuda_context.h is only for CUDA builds"
#endif

#include <cuda_runtime.h>
#if !RDD_CUDA_EMULATED
#include <cublas_v2.h>
#include <cudnn.h>
#endif

#include <cstddef>
#include <mutex>

namespace rdd {

class CudaContext {
 public:
  explicit CudaContext(int device_index);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  int device() const { return device_; }
  cudaStream_t compute_stream() const { return compute_; }
  cudaStream_t comm_stream() const { return comm_; }
#if !RDD_CUDA_EMULATED
  cudnnHandle_t cudnn();    // bound to the compute stream
  cublasHandle_t cublas();  // bound to the compute stream
#endif

  // Scratch memory for cuDNN/cuBLAS, grown on demand (stream-ordered, so growing between two calls
  // on the compute stream is safe). The pointer is valid until the next call with a larger size.
  void* workspace(size_t bytes);
  size_t workspace_size() const { return workspace_bytes_; }

  void synchronize();  // wait for the compute stream

 private:
  int device_;
  cudaStream_t compute_ = nullptr, comm_ = nullptr;
#if !RDD_CUDA_EMULATED
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
#endif
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::mutex mu_;
};

// The context of cuda:i, created on first use. Also makes i the calling thread's current device.
CudaContext& cuda_context(int device_index);

// Makes `index` the current device for the scope, restoring the previous one afterwards.
class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int index);
  ~CudaDeviceGuard();

 private:
  int previous_ = 0;
};

}  // namespace rdd
