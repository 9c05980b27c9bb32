// The evaluation ops on the GPU (eval_ops.cu): f32 NCHW, planes = N·C, on cuda:device's compute stream.
// Private to layers/: included by the .cpp (which dispatches on the tensors' device) and
// by the .cu (which defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::layers::cuda {

void flip_width(int device, const float* x, float* y, int64_t planes, int64_t h, int64_t w);
void crop_window(int device, const float* x, float* y, int64_t planes, int64_t H, int64_t W, int64_t top, int64_t left, int64_t h,
                 int64_t w);
void add_window(int device, float* acc, const float* win, int64_t planes, int64_t H, int64_t W, int64_t top, int64_t left,
                int64_t h, int64_t w);
void softmax_channels(int device, const float* x, float* y, int64_t n, int64_t c, int64_t hw);
void divide_by_map(int device, float* x, const float* map, int64_t planes, int64_t hw);

}  // namespace rdd::layers::cuda
#endif
