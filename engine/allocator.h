// Memory: host, pinned host, and a caching allocator for the GPU.
//
// The training step allocates the same sizes every iteration. The caching allocator keeps freed
// blocks in per-size free lists and hands them back out, so the steady-state step makes no
// cudaMalloc/cudaFree calls (both synchronise the device). Blocks are stream-ordered on the device's
// compute stream: a block freed by one kernel's owner can be reused by the next kernel on the same
// stream without a sync. Work on another stream (NCCL on the communication stream) must keep its
// tensors alive until that stream has been joined.
//
// The caching logic is independent of CUDA (it takes the raw allocate/free functions), so it is
// tested on machines without a GPU.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "engine/device.h"

namespace rdd {

struct AllocatorStats {
  size_t in_use_bytes = 0;     // handed out, not yet freed
  size_t cached_bytes = 0;     // freed, kept for reuse
  size_t peak_in_use_bytes = 0;
  size_t raw_allocations = 0;  // calls to the underlying allocator (cudaMalloc)
  size_t raw_frees = 0;
  size_t cache_hits = 0;
};

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(size_t)>;  // returns nullptr when out of memory
  using RawFree = std::function<void(void*)>;
  // Poisoning (the emulated device, whose "device" memory is host memory AddressSanitizer sees): poison
  // the slack after every block handed out and every cached block, so that an access even one element
  // past a tensor's end is reported instead of landing in the cache. The marks are made through
  // `in_stream_order`, which runs them in the device's stream order: a block freed by the host may still
  // be written by a kernel queued before the free (that is what stream-ordered reuse allows), so it
  // must turn poisoned only when the stream gets there. A no-op without ASan.
  using InStreamOrder = std::function<void(std::function<void()>)>;
  CachingAllocator(std::string name, RawAlloc raw_alloc, RawFree raw_free, InStreamOrder in_stream_order = nullptr);
  ~CachingAllocator();  // returns every cached block; blocks still in use are reported, not freed

  void* allocate(size_t bytes);  // bytes > 0; throws rdd::Error when even an emptied cache cannot serve it
  void free(void* ptr);
  void empty_cache();            // give all cached blocks back to the raw allocator
  AllocatorStats stats() const;

  // Requests are rounded up to this granularity, so near-equal sizes share blocks.
  static size_t round_size(size_t bytes);

 private:
  std::string name_;
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  InStreamOrder in_stream_order_;  // set: poison as above
  void mark(void* p, size_t bytes, bool poison);
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_blocks_;     // size → block
  std::unordered_map<void*, size_t> live_;       // block → size
  AllocatorStats stats_;
  void empty_cache_locked();
};

// Raw memory for a Storage on the given device. Host memory is 256-byte aligned (as cudaMalloc's). Pinned host memory
// (page-locked, for fast asynchronous copies to the GPU) falls back to ordinary host memory when
// there is no GPU.
void* device_allocate(Device d, size_t bytes, bool pinned = false);
void device_free(Device d, void* ptr, bool pinned = false);

// The caching allocator behind cuda:i (created on first use).
CachingAllocator& cuda_allocator(int device_index);

}  // namespace rdd
