// Channel argmax and confusion-matrix accumulation on the GPU (segmentation_metrics.cu).
// Private to rdd/: included by the .cpp (which dispatches on the tensors' device) and
// by the .cu (which defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::cuda {

void argmax_channels(const float* logits, int32_t* out, int64_t n, int64_t c, int64_t hw, cudaStream_t stream);
// Adds into counts (C·C int64 on the device). bad[0] (preset to −1) gets an invalid label seen, bad[1]
// (preset to INT_MIN) a predicted class outside [0, C); such pixels are not counted.
void confusion_accumulate(const int32_t* pred, const int32_t* label, int64_t n, int num_classes,
                          unsigned long long* counts, int32_t* bad, cudaStream_t stream);

}  // namespace rdd::cuda
#endif
