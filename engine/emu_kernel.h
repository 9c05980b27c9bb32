// CUDA's kernel vocabulary for the emulated device. In a RDD_CUDA=EMULATE build every .cu file is
// compiled as C++ by the host compiler with this header included first (-include), so the same source
// that nvcc compiles runs on the CPU:
//
//   __global__ / __device__ / __host__     plain functions (the toolkit's host_defines.h)
//   __shared__ T name[N]                   write RDD_SHARED(T, name, N) (engine/cuda_launch.h): per block,
//                                          on the heap, so ASan guards it; a bare __shared__ does not compile
//   extern __shared__ T name[]             write RDD_EXTERN_SHARED(T, name) (engine/cuda_launch.h)
//   threadIdx, blockIdx, blockDim, gridDim thread_local, set by the block runner
//   __syncthreads, __syncwarp, __shfl_*_sync, __ballot_sync, __any_sync, __all_sync
//                                          scheduling points, checked against CUDA's rules
//   atomics, __threadfence                 GCC's __atomic builtins (relaxed, like the GPU's)
//   __dadd_rn, __int_as_float, ...         the intrinsics our kernels use, with the same results
//   __nv_bfloat16, __half                  the toolkit's own headers (host-usable)
//
// Kernels are launched only through rdd::launch<kernel>(...) (engine/cuda_launch.h). C++17.
#pragma once

#if !RDD_CUDA_EMULATED
#error "engine/emu_kernel.h is for the emulated CUDA build (RDD_CUDA=EMULATE) only"
#endif

// Before the toolkit's host_defines.h, which keeps a __shared__ that is already defined. Shared memory is
// per block (RDD_SHARED); as a thread_local it would outlive the block and sit where ASan cannot see it.
#define __shared__ rdd_emulated_cuda_write_RDD_SHARED_instead_of___shared__

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/emu_block.h"

extern thread_local uint3 threadIdx __attribute__((tls_model("initial-exec")));
extern thread_local uint3 blockIdx __attribute__((tls_model("initial-exec")));
extern thread_local dim3 blockDim __attribute__((tls_model("initial-exec")));
extern thread_local dim3 gridDim __attribute__((tls_model("initial-exec")));
constexpr int warpSize = 32;

namespace rdd::emu {
template <class T>
uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp collectives move values of up to 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
}  // namespace rdd::emu

// ---- barriers and warp collectives (the caller's file:line names the call in the emulator's errors) ----

inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  rdd::emu::syncthreads(file, line);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  rdd::emu::warp_collective(rdd::emu::WarpOp::sync, mask, 0, 0, warpSize, file, line);
}
template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, const char* file = __builtin_FILE(),
              int line = __builtin_LINE()) {
  return rdd::emu::from_bits<T>(
      rdd::emu::warp_collective(rdd::emu::WarpOp::shfl, mask, rdd::emu::to_bits(var), src_lane, width, file, line));
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, const char* file = __builtin_FILE(),
                 int line = __builtin_LINE()) {
  return rdd::emu::from_bits<T>(rdd::emu::warp_collective(rdd::emu::WarpOp::shfl_up, mask, rdd::emu::to_bits(var),
                                                          int(delta), width, file, line));
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, const char* file = __builtin_FILE(),
                   int line = __builtin_LINE()) {
  return rdd::emu::from_bits<T>(rdd::emu::warp_collective(rdd::emu::WarpOp::shfl_down, mask, rdd::emu::to_bits(var),
                                                          int(delta), width, file, line));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize, const char* file = __builtin_FILE(),
                  int line = __builtin_LINE()) {
  return rdd::emu::from_bits<T>(rdd::emu::warp_collective(rdd::emu::WarpOp::shfl_xor, mask, rdd::emu::to_bits(var),
                                                          lane_mask, width, file, line));
}
inline unsigned __ballot_sync(unsigned mask, int predicate, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  return unsigned(rdd::emu::warp_collective(rdd::emu::WarpOp::ballot, mask, predicate != 0, 0, warpSize, file, line));
}
inline int __any_sync(unsigned mask, int predicate, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return int(rdd::emu::warp_collective(rdd::emu::WarpOp::any, mask, predicate != 0, 0, warpSize, file, line));
}
inline int __all_sync(unsigned mask, int predicate, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return int(rdd::emu::warp_collective(rdd::emu::WarpOp::all, mask, predicate != 0, 0, warpSize, file, line));
}

// ---- atomics: relaxed, as on the GPU; they return the old value ----

template <class T>
T rdd_emu_atomic_update(T* address, T (*update)(T, T), T operand) {
  T old;
  __atomic_load(address, &old, __ATOMIC_RELAXED);
  for (;;) {
    T desired = update(old, operand);
    if (__atomic_compare_exchange(address, &old, &desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return old;
  }
}
inline int atomicAdd(int* a, int v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicAdd(unsigned* a, unsigned v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
  return __atomic_fetch_add(a, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* a, float v) {
  return rdd_emu_atomic_update<float>(a, [](float x, float y) { return x + y; }, v);
}
inline double atomicAdd(double* a, double v) {
  return rdd_emu_atomic_update<double>(a, [](double x, double y) { return x + y; }, v);
}
inline int atomicSub(int* a, int v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicSub(unsigned* a, unsigned v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
template <class T>
T atomicMin(T* a, T v) {
  return rdd_emu_atomic_update<T>(a, [](T x, T y) { return y < x ? y : x; }, v);
}
template <class T>
T atomicMax(T* a, T v) {
  return rdd_emu_atomic_update<T>(a, [](T x, T y) { return x < y ? y : x; }, v);
}
template <class T>
T atomicExch(T* a, T v) {
  T old;
  __atomic_exchange(a, &v, &old, __ATOMIC_RELAXED);
  return old;
}
template <class T>
T atomicCAS(T* a, T compare, T value) {
  __atomic_compare_exchange(a, &compare, &value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value either way
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- intrinsics: IEEE round-to-nearest, which is what the host does (the build has -ffp-contract=off) ----

inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __int_as_float(int v) { return rdd::emu::from_bits<float>(uint32_t(v)); }
inline int __float_as_int(float v) { return int(uint32_t(rdd::emu::to_bits(v))); }
inline float __uint_as_float(unsigned v) { return rdd::emu::from_bits<float>(v); }
inline unsigned __float_as_uint(float v) { return unsigned(rdd::emu::to_bits(v)); }
inline double __longlong_as_double(long long v) { return rdd::emu::from_bits<double>(uint64_t(v)); }
inline long long __double_as_longlong(double v) { return (long long)rdd::emu::to_bits(v); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(unsigned(v)); }
inline int __ffs(int v) { return __builtin_ffs(v); }
template <class T>
T __ldg(const T* p) { return *p; }
