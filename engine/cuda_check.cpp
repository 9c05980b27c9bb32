#if RDD_WITH_CUDA
#include "engine/cuda_check.h"

#include <string>

#include "engine/error.h"
#if RDD_CUDA_EMULATED
#include "engine/emu_device.h"
#endif

namespace rdd::detail {

namespace {
[[noreturn]] void raise(const char* lib, const char* call, const char* file, int line, const std::string& what,
                        const char* hint) {
  fail(lib, " call failed: ", call, "\n  at ", file, ":", line, "\n  ", what, hint && *hint ? "\n  " : "",
       hint ? hint : "");
}
}  // namespace

void check_cuda(cudaError_t s, const char* call, const char* file, int line) {
  if (s == cudaSuccess) return;
  cudaGetLastError();  // clear non-sticky errors so the next call starts clean
  const char* hint = "";
  switch (s) {
    case cudaErrorMemoryAllocation:
      hint = "The GPU is out of memory: lower --batch or --crop, or free the GPU from other processes.";
      break;
    case cudaErrorNoDevice: case cudaErrorInsufficientDriver: case cudaErrorInvalidDevice:
      hint = "Check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES; run with --device cpu to use the CPU.";
      break;
    case cudaErrorIllegalAddress: case cudaErrorLaunchFailure: case cudaErrorMisalignedAddress:
      hint = "This is a bug in rdd: rerun with CUDA_LAUNCH_BLOCKING=1 to locate the kernel, and report it.";
      break;
    default: break;
  }
  std::string what = std::string(cudaGetErrorName(s)) + ": " + cudaGetErrorString(s);
#if RDD_CUDA_EMULATED
  // The emulator knows more than the error code: which kernel, pointer or rule.
  const std::string detail = emu::last_error_detail();
  if (!detail.empty()) what += "\n  " + detail;
  if (s == cudaErrorLaunchFailure) hint = "This is a bug in rdd's GPU code, found by the emulated device: report it.";
#endif
  raise("CUDA", call, file, line, what, hint);
}

#if !RDD_CUDA_EMULATED

void check_cudnn(cudnnStatus_t s, const char* call, const char* file, int line) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  std::string what = cudnnGetErrorString(s);
  if (detail[0]) what += std::string(" (") + detail + ")";
  const char* hint = s == CUDNN_STATUS_NOT_SUPPORTED
                         ? "cuDNN has no engine for this configuration; the shapes are in the message above."
                         : "";
  raise("cuDNN", call, file, line, what, hint);
}

void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  raise("cuBLAS", call, file, line, std::string(cublasGetStatusName(s)) + ": " + cublasGetStatusString(s),
        s == CUBLAS_STATUS_ALLOC_FAILED ? "The GPU is out of memory: lower --batch or --crop." : "");
}

void check_nccl(ncclResult_t s, const char* call, const char* file, int line) {
  if (s == ncclSuccess) return;
  const char* hint = "";
  if (s == ncclSystemError || s == ncclRemoteError)
    hint = "A peer rank or the network failed; rerun with NCCL_DEBUG=INFO for details.";
  raise("NCCL", call, file, line, ncclGetErrorString(s), hint);
}

#endif  // !RDD_CUDA_EMULATED

}  // namespace rdd::detail
#endif
