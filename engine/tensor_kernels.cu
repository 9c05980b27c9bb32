// Elementwise kernels for Tensor: fill, dtype conversion, NCHW ↔ NHWC reorder.
#include "engine/cuda_launch.h"
#include "engine/device_dtype.h"
#include "engine/error.h"
#include "engine/tensor_kernels.h"

namespace rdd::kernels {

namespace {
constexpr int kThreads = kThreadsPerBlock;
inline unsigned blocks_for(int64_t n) { return grid_stride_blocks(n); }  // engine/cuda_launch.h

template <class T>
__device__ T from_double(double v);
template <> __device__ float from_double<float>(double v) { return float(v); }
template <> __device__ double from_double<double>(double v) { return v; }
template <> __device__ __nv_bfloat16 from_double<__nv_bfloat16>(double v) { return __float2bfloat16(float(v)); }
template <> __device__ __half from_double<__half>(double v) { return __float2half(float(v)); }
template <> __device__ int32_t from_double<int32_t>(double v) { return int32_t(v); }
template <> __device__ int64_t from_double<int64_t>(double v) { return int64_t(v); }
template <> __device__ uint8_t from_double<uint8_t>(double v) { return uint8_t(v); }

template <class T>
__device__ float to_float(T v) { return float(v); }
template <> __device__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ float to_float<__half>(__half v) { return __half2float(v); }

template <class T>
__global__ void fill_kernel(T* dst, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}

template <class S, class D>
__global__ void convert_kernel(const S* src, D* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<S, double>)
      dst[i] = from_double<D>(src[i]);
    else
      dst[i] = from_double<D>(double(to_float(src[i])));
  }
}

// One thread per element; index decomposed in the *destination* order so writes are coalesced.
template <class T>
__global__ void reorder_kernel(const T* src, T* dst, int64_t n, int64_t c, int64_t h, int64_t w, bool to_nhwc) {
  const int64_t total = n * c * h * w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    if (to_nhwc) {  // i indexes dst as (n, h, w, c)
      const int64_t ci = i % c, wi = (i / c) % w, hi = (i / (c * w)) % h, ni = i / (c * w * h);
      dst[i] = src[((ni * c + ci) * h + hi) * w + wi];
    } else {        // i indexes dst as (n, c, h, w)
      const int64_t wi = i % w, hi = (i / w) % h, ci = (i / (w * h)) % c, ni = i / (w * h * c);
      dst[i] = src[((ni * h + hi) * w + wi) * c + ci];
    }
  }
}

}  // namespace

void fill(void* dst, int64_t n, DType dtype, double value, cudaStream_t stream) {
  if (n == 0) return;
  with_device_type(dtype, [&](auto zero) {
    using T = decltype(zero);
    T v;
    if constexpr (std::is_same_v<T, __nv_bfloat16>) v = __float2bfloat16(float(value));
    else if constexpr (std::is_same_v<T, __half>) v = __float2half(float(value));
    else v = T(value);
    launch<fill_kernel<T>>(blocks_for(n), kThreads, 0, stream)(static_cast<T*>(dst), n, v);
  });
}

void convert(const void* src, DType sd, void* dst, DType dd, int64_t n, cudaStream_t stream) {
  RDD_CHECK(is_floating(sd) && is_floating(dd), "to_dtype on the GPU converts between float types only (",
            dtype_name(sd), " → ", dtype_name(dd), ")");
  if (n == 0) return;
  with_device_type(sd, [&](auto s0) {
    with_device_type(dd, [&](auto d0) {
      using S = decltype(s0);
      using D = decltype(d0);
      if constexpr (std::is_floating_point_v<S> || std::is_same_v<S, __nv_bfloat16> || std::is_same_v<S, __half>)
        launch<convert_kernel<S, D>>(blocks_for(n), kThreads, 0, stream)(static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
}

void reorder_4d(const void* src, void* dst, int64_t n, int64_t c, int64_t h, int64_t w, size_t elem_bytes,
                bool to_nhwc, cudaStream_t stream) {
  const int64_t total = n * c * h * w;
  if (total == 0) return;
  // Only the element size matters: reorder as unsigned words of that size.
  auto reorder_as = [&](auto word) {
    using W = decltype(word);
    launch<reorder_kernel<W>>(blocks_for(total), kThreads, 0, stream)(static_cast<const W*>(src), static_cast<W*>(dst),
                                                                      n, c, h, w, to_nhwc);
  };
  switch (elem_bytes) {
    case 1: reorder_as(uint8_t{}); break;
    case 2: reorder_as(uint16_t{}); break;
    case 4: reorder_as(uint32_t{}); break;
    case 8: reorder_as(uint64_t{}); break;
    default: fail("reorder_4d: element size ", elem_bytes);
  }
}

}  // namespace rdd::kernels
