// Bilinear resize on the GPU (resize.cu), f32.
// Private to layers/: included by the .cpp (which dispatches on the tensors' device) and
// by the .cu (which defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::layers::cuda {

// layers/resize.cu. x: (planes, in_h, in_w) f32; y: (planes, out_h, out_w) f32.
void bilinear_resize_forward(const float* x, float* y, int64_t planes, int in_h, int in_w, int out_h, int out_w,
                             float scale_h, float scale_w, bool align_corners, cudaStream_t stream);
// dy: (planes, out_h, out_w) f32; dx: (planes, in_h, in_w) f32, overwritten; scratch: planes·out_h·in_w f32.
void bilinear_resize_backward(const float* dy, float* dx, int64_t planes, int in_h, int in_w, int out_h, int out_w,
                              float scale_h, float scale_w, bool align_corners, float* scratch, cudaStream_t stream);

}  // namespace rdd::layers::cuda
#endif
