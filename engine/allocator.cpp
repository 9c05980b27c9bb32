#include "engine/allocator.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/error.h"

#if RDD_WITH_CUDA
#include "engine/cuda_check.h"
#include "engine/cuda_context.h"
#endif
#if RDD_CUDA_EMULATED
#include "engine/emu_device.h"
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace rdd {

namespace {
std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / (1 << 20));
  return buf;
}

// [p, p + bytes) addressable or not, for AddressSanitizer (no-ops in other builds).
void asan_poison(void* p, size_t bytes) {
#if defined(__SANITIZE_ADDRESS__)
  ASAN_POISON_MEMORY_REGION(p, bytes);
#else
  (void)p, (void)bytes;
#endif
}
void asan_unpoison(void* p, size_t bytes) {
#if defined(__SANITIZE_ADDRESS__)
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#else
  (void)p, (void)bytes;
#endif
}
}  // namespace

CachingAllocator::CachingAllocator(std::string name, RawAlloc raw_alloc, RawFree raw_free, InStreamOrder in_stream_order)
    : name_(std::move(name)),
      raw_alloc_(std::move(raw_alloc)),
      raw_free_(std::move(raw_free)),
      in_stream_order_(std::move(in_stream_order)) {}

void CachingAllocator::mark(void* p, size_t bytes, bool poison) {
  if (!in_stream_order_ || bytes == 0) return;
  in_stream_order_([p, bytes, poison] {
    if (poison) asan_poison(p, bytes);
    else asan_unpoison(p, bytes);
  });
}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mu_);
  empty_cache_locked();
}

size_t CachingAllocator::round_size(size_t bytes) {
  // 512 B granularity below 1 MiB, 2 MiB above (large activations repeat exactly anyway).
  const size_t small = 512, large = size_t(2) << 20;
  const size_t g = bytes < (size_t(1) << 20) ? small : large;
  return (bytes + g - 1) / g * g;
}

void* CachingAllocator::allocate(size_t bytes) {
  RDD_CHECK(bytes > 0, name_, ": zero-byte allocation");
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  // Best fit among cached blocks, but never more than twice the request (no giant block for a tiny one).
  auto it = free_blocks_.lower_bound(size);
  if (it != free_blocks_.end() && it->first <= 2 * size) {
    void* p = it->second;
    const size_t got = it->first;
    free_blocks_.erase(it);
    live_[p] = got;
    stats_.cached_bytes -= got;
    stats_.in_use_bytes += got;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    ++stats_.cache_hits;
    mark(p, bytes, false);
    mark(static_cast<char*>(p) + bytes, got - bytes, true);
    return p;
  }
  void* p = raw_alloc_(size);
  if (!p && !free_blocks_.empty()) {  // out of memory: return the cache and try once more
    empty_cache_locked();
    p = raw_alloc_(size);
  }
  RDD_CHECK(p, name_, ": out of memory allocating ", mib(size), " (", mib(stats_.in_use_bytes),
            " in use). Lower --batch or --crop.");
  ++stats_.raw_allocations;
  live_[p] = size;
  stats_.in_use_bytes += size;
  stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
  mark(static_cast<char*>(p) + bytes, size - bytes, true);
  return p;
}

void CachingAllocator::free(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  RDD_CHECK(it != live_.end(), name_, ": free of a pointer it did not allocate");
  const size_t size = it->second;
  live_.erase(it);
  stats_.in_use_bytes -= size;
  stats_.cached_bytes += size;
  free_blocks_.emplace(size, ptr);
  mark(ptr, size, true);  // a use after free lands in poisoned memory
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  empty_cache_locked();
}

void CachingAllocator::empty_cache_locked() {
  for (auto& [size, p] : free_blocks_) {
    mark(p, size, false);  // before the raw free, which waits for the stream
    raw_free_(p);
    ++stats_.raw_frees;
  }
  free_blocks_.clear();
  stats_.cached_bytes = 0;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

#if RDD_WITH_CUDA
namespace {
// The emulated device's blocks are poisoned for ASan in the order of the device's compute stream (see
// allocator.h); a real GPU's memory is not host memory, so nothing to do there.
CachingAllocator::InStreamOrder poison_in_stream_order(int device_index) {
#if RDD_CUDA_EMULATED && defined(__SANITIZE_ADDRESS__)
  // The stream is looked up once, by the first allocation: later marks make no CUDA call, so that
  // freeing after a (sticky) kernel fault still works, and the marks run even then.
  auto stream = std::make_shared<std::atomic<cudaStream_t>>(nullptr);
  return [device_index, stream](std::function<void()> mark) {
    cudaStream_t s = stream->load();
    if (!s) {
      CudaDeviceGuard guard(device_index);  // cuda_context() would leave device_index current
      s = cuda_context(device_index).compute_stream();
      stream->store(s);
    }
    emu::enqueue_bookkeeping(s, std::move(mark));
  };
#else
  (void)device_index;
  return nullptr;
#endif
}
}  // namespace

CachingAllocator& cuda_allocator(int device_index) {
  static std::mutex mu;
  // Never destroyed (see cuda_context.cpp): device memory is returned by the driver at exit.
  static auto* per_device = new std::vector<std::unique_ptr<CachingAllocator>>();
  std::lock_guard<std::mutex> lock(mu);
  RDD_CHECK(device_index >= 0 && device_index < gpu_count(), "cuda:", device_index, " does not exist (",
            gpu_count(), " GPUs found)");
  if (per_device->empty()) per_device->resize(size_t(gpu_count()));
  auto& a = (*per_device)[size_t(device_index)];
  if (!a) {
    a = std::make_unique<CachingAllocator>(
        "cuda:" + std::to_string(device_index) + " allocator",
        [device_index](size_t n) -> void* {
          CudaDeviceGuard guard(device_index);  // the caller's current device is restored
          void* p = nullptr;
          if (cudaMalloc(&p, n) != cudaSuccess) {
            cudaGetLastError();  // out of memory is reported by the caching allocator
            return nullptr;
          }
          return p;
        },
        [device_index](void* p) {
          CudaDeviceGuard guard(device_index);
          cudaFree(p);
        },
        poison_in_stream_order(device_index));
  }
  return *a;
}
#else
CachingAllocator& cuda_allocator(int device_index) { fail("cuda:", device_index, ": this is a CPU-only build of rdd"); }
#endif

void* device_allocate(Device d, size_t bytes, bool pinned) {
  if (bytes == 0) bytes = 1;  // every storage gets a distinct, valid address
  if (d.is_cuda()) return cuda_allocator(d.index).allocate(bytes);
#if RDD_WITH_CUDA
  if (pinned && has_gpu()) {
    void* p = nullptr;
    // Portable: page-locked for every GPU's context, not only the one current on this thread.
    RDD_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocPortable));
    return p;
  }
#endif
  // 256-byte aligned, like cudaMalloc: parameter views promise 256-byte alignment on every device.
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  RDD_CHECK(p, "out of host memory allocating ", mib(bytes));
  return p;
}

void device_free(Device d, void* ptr, bool pinned) {
  if (!ptr) return;
  if (d.is_cuda()) {
    cuda_allocator(d.index).free(ptr);
    return;
  }
#if RDD_WITH_CUDA
  if (pinned && has_gpu()) {
    cudaFreeHost(ptr);
    return;
  }
#endif
  std::free(ptr);
}

}  // namespace rdd
