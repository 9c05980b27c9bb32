#if RDD_WITH_CUDA
#include "engine/cuda_context.h"

#include <memory>
#include <vector>

#include "engine/allocator.h"
#include "engine/cuda_check.h"
#include "engine/device.h"
#include "engine/error.h"

namespace rdd {

CudaContext::CudaContext(int device_index) : device_(device_index) {
  CudaDeviceGuard guard(device_);
  RDD_CUDA_CHECK(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
  RDD_CUDA_CHECK(cudaStreamCreateWithFlags(&comm_, cudaStreamNonBlocking));
}

CudaContext::~CudaContext() {
  // Not reached in practice (contexts live for the process); errors are ignored.
  cudaSetDevice(device_);
  if (workspace_) cuda_allocator(device_).free(workspace_);
#if !RDD_CUDA_EMULATED
  if (cublas_) cublasDestroy(cublas_);
  if (cudnn_) cudnnDestroy(cudnn_);
#endif
  if (compute_) cudaStreamDestroy(compute_);
  if (comm_) cudaStreamDestroy(comm_);
}

#if !RDD_CUDA_EMULATED
cudnnHandle_t CudaContext::cudnn() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!cudnn_) {
    CudaDeviceGuard guard(device_);
    RDD_CUDNN_CHECK(cudnnCreate(&cudnn_));
    RDD_CUDNN_CHECK(cudnnSetStream(cudnn_, compute_));
  }
  return cudnn_;
}

cublasHandle_t CudaContext::cublas() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!cublas_) {
    CudaDeviceGuard guard(device_);
    RDD_CUBLAS_CHECK(cublasCreate(&cublas_));
    RDD_CUBLAS_CHECK(cublasSetStream(cublas_, compute_));
  }
  return cublas_;
}
#endif

void* CudaContext::workspace(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (bytes > workspace_bytes_) {
    auto& alloc = cuda_allocator(device_);
    if (workspace_) alloc.free(workspace_);
    workspace_ = alloc.allocate(bytes);
    workspace_bytes_ = bytes;
  }
  return workspace_;
}

void CudaContext::synchronize() { RDD_CUDA_CHECK(cudaStreamSynchronize(compute_)); }

CudaContext& cuda_context(int device_index) {
  static std::mutex mu;
  // Never destroyed: CUDA objects must not be torn down by static destructors racing driver shutdown.
  static auto* contexts = new std::vector<std::unique_ptr<CudaContext>>();
  std::lock_guard<std::mutex> lock(mu);
  RDD_CHECK(device_index >= 0 && device_index < gpu_count(), "cuda:", device_index, " does not exist (",
            gpu_count(), " GPUs found",
            gpu_count() == 0 ? std::string(": ") + no_gpu_reason() : std::string(), ")");
  if (contexts->empty()) contexts->resize(size_t(gpu_count()));
  auto& c = (*contexts)[size_t(device_index)];
  if (!c) c = std::make_unique<CudaContext>(device_index);
  RDD_CUDA_CHECK(cudaSetDevice(device_index));
  return *c;
}

CudaDeviceGuard::CudaDeviceGuard(int index) {
  RDD_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != index) RDD_CUDA_CHECK(cudaSetDevice(index));
}

CudaDeviceGuard::~CudaDeviceGuard() { cudaSetDevice(previous_); }

}  // namespace rdd
#endif
