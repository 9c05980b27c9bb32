// Tensor's fill, dtype conversion and NCHW ↔ NHWC reorder on the GPU (tensor.cu).
// Private to engine/: included by tensor.cpp and tensor.cu. C++17.
#pragma once

#include <cstdint>

#include "engine/dtype.h"

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

namespace rdd::cuda {
// dst[i] = value for i < n, stored as `dtype`.
void fill(void* dst, int64_t n, DType dtype, double value, cudaStream_t stream);
// dst[i] = convert(src[i]) between floating dtypes (f32, f64, bf16, f16).
void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n, cudaStream_t stream);
// 4-D reorder between NCHW and NHWC for an element size of 1, 2, 4 or 8 bytes.
// (n, c, h, w) are the logical sizes; to_nhwc says the direction.
void reorder_4d(const void* src, void* dst, int64_t n, int64_t c, int64_t h, int64_t w, size_t elem_bytes,
                bool to_nhwc, cudaStream_t stream);
}  // namespace rdd::cuda
#endif
