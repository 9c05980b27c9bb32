// The CIRKD augmentation on the GPU (augment_device.cu): one thread per output pixel.
// Private to data/: included by the .cpp (which dispatches on the device) and by the .cu (which
// defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include "data/augment_pixel.h"

namespace rdd::data::cuda {

// jobs[n] → images (N, 3, crop_h, crop_w) f32 and labels (N, crop_h, crop_w) i32 of image n, on `stream`.
void cirkd_augment(const pixel::CirkdJob* jobs, int n, const pixel::Norm& norm, int crop_h, int crop_w, float* images,
                   int32_t* labels, cudaStream_t stream);

}  // namespace rdd::data::cuda
#endif
