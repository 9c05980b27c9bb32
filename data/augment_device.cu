// CUDA side of augment_device.h: one thread per output pixel of the batch; the per-pixel math is the
// shared host/device code of augment_pixel.h.
#include <cuda_runtime.h>

#include <algorithm>

#include "data/augment_pixel.h"
#include "engine/cuda_check.h"
#include "engine/cuda_launch.h"

namespace rdd::data::kernels {

namespace {
constexpr int kJobsPerLaunch = 32;  // kernel parameters: 32 jobs × 56 bytes, well under the 4 KiB limit

struct JobBlock {
  pixel::CirkdJob job[kJobsPerLaunch];
};

// grid (ceil(crop_w / 128), crop_h, jobs); images: (N, 3, crop_h, crop_w) f32; labels: (N, crop_h, crop_w) i32.
__global__ void cirkd_augment_kernel(JobBlock jobs, pixel::Norm norm, int crop_h, int crop_w, float* images,
                                     int32_t* labels) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y;
  const int i = blockIdx.z;
  if (x >= crop_w) return;
  float v[3];
  int32_t l;
  pixel::cirkd_pixel(jobs.job[i], norm, y, x, crop_w, v, l);
  const size_t plane = size_t(crop_h) * size_t(crop_w);
  const size_t o = size_t(y) * size_t(crop_w) + size_t(x);
  for (int c = 0; c < 3; ++c) images[(size_t(i) * 3 + size_t(c)) * plane + o] = v[c];
  labels[size_t(i) * plane + o] = l;
}
}  // namespace

void cirkd_augment(const pixel::CirkdJob* jobs, int n, const pixel::Norm& norm, int crop_h, int crop_w, float* images,
                   int32_t* labels, cudaStream_t stream) {
  const size_t plane = size_t(crop_h) * size_t(crop_w);
  for (int first = 0; first < n; first += kJobsPerLaunch) {
    const int count = std::min(kJobsPerLaunch, n - first);
    JobBlock block;
    for (int k = 0; k < count; ++k) block.job[k] = jobs[first + k];
    const dim3 threads(128);
    const dim3 grid(unsigned((crop_w + 127) / 128), unsigned(crop_h), unsigned(count));
    launch<cirkd_augment_kernel>(grid, threads, 0, stream)(block, norm, crop_h, crop_w, images + size_t(first) * 3 * plane,
                                                      labels + size_t(first) * plane);
  }
}

}  // namespace rdd::data::kernels
