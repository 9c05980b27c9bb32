// The CUDA runtime API that rdd calls, implemented on the emulated device (emu_device.h). The
// declarations are the toolkit's own (cuda_runtime_api.h), so a signature that drifted would not
// compile, and a function rdd starts to call but this file lacks fails to link: add it here.
//
// Semantics kept from CUDA: stream order; the host runs ahead of the device; cudaMemcpyAsync from
// pageable memory returns once the source is staged, into pageable memory only once the copy is done;
// cudaMemcpy, cudaMemset and cudaFree synchronise as CUDA documents; a kernel fault is sticky. Checked
// beyond what a GPU checks at the call: the copy kind against where each pointer lives, and every range
// against its allocation.
#if RDD_CUDA_EMULATED
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <vector>

#include "engine/emu_device_state.h"

using namespace rdd::emu;

namespace {

#define RDD_EMU_RETURN_IF_STICKY()                 \
  do {                                             \
    if (const cudaError_t s_ = sticky_error()) return s_; \
  } while (0)

std::string ptr_text(const void* p) {
  std::ostringstream os;
  os << p;
  return os.str();
}

const char* kind_name(cudaMemcpyKind k) {
  switch (k) {
    case cudaMemcpyHostToHost: return "cudaMemcpyHostToHost";
    case cudaMemcpyHostToDevice: return "cudaMemcpyHostToDevice";
    case cudaMemcpyDeviceToHost: return "cudaMemcpyDeviceToHost";
    case cudaMemcpyDeviceToDevice: return "cudaMemcpyDeviceToDevice";
    case cudaMemcpyDefault: return "cudaMemcpyDefault";
  }
  return "an unknown cudaMemcpyKind";
}

bool valid_device(int d) { return d >= 0 && d < device_count(); }

// One side of a copy or set: `bytes` from p, which must be device memory when `on_device`, and must
// not be when not. Ranges in device and pinned memory must stay inside their allocation.
bool check_side(const char* call, const char* side, const void* p, size_t bytes, bool on_device, std::string* why,
                Region* region) {
  const Region r = find_region(p);
  if (region) *region = r;
  std::ostringstream os;
  os << "emulated CUDA: " << call << ": the " << side << " " << p << " ";
  if (on_device && r.kind != Region::Kind::device) {
    os << "is not device memory (it is " << describe(r) << ")";
    *why = os.str();
    return false;
  }
  if (!on_device && r.kind == Region::Kind::device) {
    os << "is device memory (" << describe(r) << "), not host memory";
    *why = os.str();
    return false;
  }
  if (r.kind != Region::Kind::none) {
    const size_t offset = size_t(static_cast<const char*>(p) - r.base);
    if (bytes > r.bytes - std::min(offset, r.bytes)) {
      os << "with " << bytes << " bytes runs past the end of " << describe(r) << " (offset " << offset << ")";
      *why = os.str();
      return false;
    }
  }
  return true;
}

// Resolves cudaMemcpyDefault and checks both sides of a copy.
bool check_copy(const char* call, void* dst, const void* src, size_t dst_span, size_t src_span, cudaMemcpyKind& kind,
                std::string* why, Region* dst_region, Region* src_region) {
  if (kind == cudaMemcpyDefault) {
    const bool dd = find_region(dst).kind == Region::Kind::device, sd = find_region(src).kind == Region::Kind::device;
    kind = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
              : (sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  }
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDeviceToDevice) {
    *why = std::string("emulated CUDA: ") + call + ": " + kind_name(kind);
    return false;
  }
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const std::string c = std::string(call) + " (" + kind_name(kind) + ")";
  return check_side(c.c_str(), "destination", dst, dst_span, dst_dev, why, dst_region) &&
         check_side(c.c_str(), "source", src, src_span, src_dev, why, src_region);
}

size_t span_2d(size_t pitch, size_t width, size_t height) { return height == 0 ? 0 : (height - 1) * pitch + width; }

void copy_2d(char* dst, size_t dpitch, const char* src, size_t spitch, size_t width, size_t height) {
  for (size_t row = 0; row < height; ++row) std::memcpy(dst + row * dpitch, src + row * spitch, width);
}

// Queues a copy on s with CUDA's rules for pageable host memory: a pageable source is staged now (the
// caller may reuse it once the call returns); a pageable destination makes the call wait for the copy.
cudaError_t queue_copy(Stream* s, char* dst, size_t dpitch, const char* src, size_t spitch, size_t width,
                       size_t height, const Region& dst_region, const Region& src_region, bool synchronous) {
  if (width == 0 || height == 0) return cudaSuccess;
  std::shared_ptr<std::vector<char>> staged;
  if (src_region.kind == Region::Kind::none) {
    staged = std::make_shared<std::vector<char>>(width * height);
    copy_2d(staged->data(), width, src, spitch, width, height);
    src = staged->data();
    spitch = width;
  }
  const uint64_t ticket = submit(s, [=] { copy_2d(dst, dpitch, src, spitch, width, height); (void)staged; }, false);
  if (synchronous || dst_region.kind == Region::Kind::none) s->wait_for(ticket);
  return sticky_error();
}

Event* as_event(cudaEvent_t e) { return reinterpret_cast<Event*>(e); }

struct EventRegistry {
  std::mutex mu;
  std::vector<Event*> live;
  bool contains(Event* e) {
    std::lock_guard<std::mutex> lock(mu);
    return std::find(live.begin(), live.end(), e) != live.end();
  }
};
EventRegistry& events() {
  static auto* r = new EventRegistry;
  return *r;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Devices
// ------------------------------------------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int* count) {
  *count = device_count();
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (!valid_device(device))
    return fail_call(cudaErrorInvalidDevice, "emulated CUDA: cudaSetDevice(" + std::to_string(device) + "): " +
                                                 std::to_string(device_count()) + " emulated device(s) (RDD_EMU_DEVICES)");
  set_current_device(device);
  return sticky_error();
}

cudaError_t cudaGetDevice(int* device) {
  *device = current_device();
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (!valid_device(device)) return fail_call(cudaErrorInvalidDevice, "emulated CUDA: no device " + std::to_string(device));
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof(p->name), "rdd emulated CUDA device (CPU, %d threads)", block_threads());
  p->totalGlobalMem = device_memory_bytes();
  p->sharedMemPerBlock = 48 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->memPitch = size_t(1) << 31;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024;
  p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647;
  p->maxGridSize[1] = 65535;
  p->maxGridSize[2] = 65535;
  p->major = 8;  // the kernels are written for sm_80 and newer
  p->minor = 0;
  p->multiProcessorCount = block_threads();
  p->unifiedAddressing = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (!valid_device(device)) return fail_call(cudaErrorInvalidDevice, "emulated CUDA: no device " + std::to_string(device));
  switch (attr) {
    case cudaDevAttrMaxPitch: *value = 2147483647; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = block_threads(); return cudaSuccess;
    case cudaDevAttrWarpSize: *value = 32; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *value = 8; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    default:
      return fail_call(cudaErrorInvalidValue,
                       "emulated CUDA: cudaDeviceGetAttribute(" + std::to_string(int(attr)) + ") is not emulated");
  }
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  RDD_EMU_RETURN_IF_STICKY();
  *total_bytes = device_memory_bytes();
  *free_bytes = *total_bytes - std::min(*total_bytes, memory_map().used(current_device()));
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = CUDART_VERSION;  // the toolkit the emulated build compiled against
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* v) {
  *v = 0;  // no driver: the device is emulated
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  RDD_EMU_RETURN_IF_STICKY();
  for (Stream* s : device_state(current_device()).live_streams()) s->wait_for(s->submitted());
  return sticky_error();
}

cudaError_t cudaDeviceReset() {
  return fail_call(cudaErrorNotSupported, "emulated CUDA: cudaDeviceReset is not emulated");
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

cudaError_t cudaGetLastError() { return take_last_error(true); }
cudaError_t cudaPeekAtLastError() { return take_last_error(false); }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorNotSupported: return "operation not supported";
    default: return "unknown error (emulated CUDA)";
  }
}

// ------------------------------------------------------------------------------------------------
// Memory
// ------------------------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** p, size_t bytes) {
  RDD_EMU_RETURN_IF_STICKY();
  *p = nullptr;
  const int d = current_device();
  if (memory_map().used(d) + bytes > device_memory_bytes())
    return fail_call(cudaErrorMemoryAllocation, "emulated CUDA: cudaMalloc(" + std::to_string(bytes) + ") on cuda:" +
                                                    std::to_string(d) + ": past RDD_EMU_MEMORY_MB");
  void* m = nullptr;
  // Exactly `bytes` (never rounded up): under AddressSanitizer one byte past the end is caught.
  if (posix_memalign(&m, 256, std::max<size_t>(bytes, 1)) != 0)
    return fail_call(cudaErrorMemoryAllocation, "emulated CUDA: cudaMalloc(" + std::to_string(bytes) + "): host out of memory");
  Region r;
  r.kind = Region::Kind::device;
  r.device = d;
  r.base = static_cast<char*>(m);
  r.bytes = bytes;
  memory_map().add(r);
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  const Region r = find_region(p);
  if (r.kind != Region::Kind::device || r.base != p)
    return fail_call(cudaErrorInvalidValue, "emulated CUDA: cudaFree(" + ptr_text(p) + "): not a pointer cudaMalloc returned (it is " +
                                                describe(r) + ")");
  // cudaFree synchronises the device: no queued kernel may still use the memory.
  for (Stream* s : device_state(r.device).live_streams()) s->wait_for(s->submitted());
  memory_map().remove(p, Region::Kind::device, nullptr);
  std::free(p);
  return sticky_error();
}

cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int flags) {
  RDD_EMU_RETURN_IF_STICKY();
  void* m = nullptr;
  if (posix_memalign(&m, 4096, std::max<size_t>(bytes, 1)) != 0)
    return fail_call(cudaErrorMemoryAllocation, "emulated CUDA: cudaHostAlloc(" + std::to_string(bytes) + "): out of memory");
  Region r;
  r.kind = Region::Kind::pinned;
  r.base = static_cast<char*>(m);
  r.bytes = bytes;
  memory_map().add(r);
  *p = m;
  (void)flags;  // portable, mapped, write-combined: all the same on the emulated device
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, cudaHostAllocDefault); }

cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  // Like cudaFree, freeing pinned memory waits for the work that may still read or write it.
  for (int d = 0; d < device_count(); ++d)
    for (Stream* s : device_state(d).live_streams()) s->wait_for(s->submitted());
  if (!memory_map().remove(p, Region::Kind::pinned, nullptr))
    return fail_call(cudaErrorInvalidValue, "emulated CUDA: cudaFreeHost(" + ptr_text(p) + "): not a pointer cudaHostAlloc returned");
  std::free(p);
  return sticky_error();
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  const Region r = find_region(p);
  *a = cudaPointerAttributes{};
  a->type = r.kind == Region::Kind::device ? cudaMemoryTypeDevice
                                           : (r.kind == Region::Kind::pinned ? cudaMemoryTypeHost : cudaMemoryTypeUnregistered);
  a->device = r.kind == Region::Kind::device ? r.device : -1;
  a->devicePointer = r.kind == Region::Kind::none ? nullptr : const_cast<void*>(p);
  a->hostPointer = r.kind == Region::Kind::device ? nullptr : const_cast<void*>(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  RDD_EMU_RETURN_IF_STICKY();
  std::string why;
  Region dr, sr;
  if (!check_copy("cudaMemcpy", dst, src, count, count, kind, &why, &dr, &sr)) return fail_call(cudaErrorInvalidValue, why);
  Stream* s = device_state(current_device()).legacy;
  return queue_copy(s, static_cast<char*>(dst), count, static_cast<const char*>(src), count, count, 1, dr, sr, true);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream) {
  RDD_EMU_RETURN_IF_STICKY();
  std::string why;
  Region dr, sr;
  if (!check_copy("cudaMemcpyAsync", dst, src, count, count, kind, &why, &dr, &sr)) return fail_call(cudaErrorInvalidValue, why);
  Stream* s = resolve_stream(stream, &why);
  if (!s) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaMemcpyAsync: " + why);
  return queue_copy(s, static_cast<char*>(dst), count, static_cast<const char*>(src), count, count, 1, dr, sr,
                    kind == cudaMemcpyHostToHost);
}

cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
  RDD_EMU_RETURN_IF_STICKY();
  std::string why;
  Region dr, sr;
  if (width > dpitch || width > spitch)
    return fail_call(cudaErrorInvalidValue, "emulated CUDA: cudaMemcpy2D: width " + std::to_string(width) + " exceeds a pitch");
  if (!check_copy("cudaMemcpy2D", dst, src, span_2d(dpitch, width, height), span_2d(spitch, width, height), kind, &why, &dr, &sr))
    return fail_call(cudaErrorInvalidValue, why);
  Stream* s = device_state(current_device()).legacy;
  return queue_copy(s, static_cast<char*>(dst), dpitch, static_cast<const char*>(src), spitch, width, height, dr, sr, true);
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
  RDD_EMU_RETURN_IF_STICKY();
  std::string why;
  Region dr, sr;
  if (width > dpitch || width > spitch)
    return fail_call(cudaErrorInvalidValue, "emulated CUDA: cudaMemcpy2DAsync: width " + std::to_string(width) + " exceeds a pitch");
  if (!check_copy("cudaMemcpy2DAsync", dst, src, span_2d(dpitch, width, height), span_2d(spitch, width, height), kind, &why,
                  &dr, &sr))
    return fail_call(cudaErrorInvalidValue, why);
  Stream* s = resolve_stream(stream, &why);
  if (!s) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaMemcpy2DAsync: " + why);
  return queue_copy(s, static_cast<char*>(dst), dpitch, static_cast<const char*>(src), spitch, width, height, dr, sr,
                    kind == cudaMemcpyHostToHost);
}

cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t count,
                                cudaStream_t stream) {
  RDD_EMU_RETURN_IF_STICKY();
  std::string why;
  Region dr, sr;
  cudaMemcpyKind kind = cudaMemcpyDeviceToDevice;
  if (!check_copy("cudaMemcpyPeerAsync", dst, src, count, count, kind, &why, &dr, &sr)) return fail_call(cudaErrorInvalidValue, why);
  if (dr.device != dst_device || sr.device != src_device)
    return fail_call(cudaErrorInvalidValue, "emulated CUDA: cudaMemcpyPeerAsync: the pointers live on cuda:" + std::to_string(dr.device) +
                                                " and cuda:" + std::to_string(sr.device) + ", not on the devices named (" +
                                                std::to_string(dst_device) + ", " + std::to_string(src_device) + ")");
  Stream* s = resolve_stream(stream, &why);
  if (!s) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaMemcpyPeerAsync: " + why);
  return queue_copy(s, static_cast<char*>(dst), count, static_cast<const char*>(src), count, count, 1, dr, sr, false);
}

static cudaError_t queue_memset(const char* call, void* p, int value, size_t count, Stream* s, bool synchronous) {
  std::string why;
  if (!check_side(call, "destination", p, count, true, &why, nullptr)) return fail_call(cudaErrorInvalidValue, why);
  if (count == 0) return cudaSuccess;
  const uint64_t ticket = submit(s, [=] { std::memset(p, value, count); }, false);
  if (synchronous) s->wait_for(ticket);
  return sticky_error();
}

cudaError_t cudaMemset(void* p, int value, size_t count) {
  RDD_EMU_RETURN_IF_STICKY();
  return queue_memset("cudaMemset", p, value, count, device_state(current_device()).legacy, true);
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t count, cudaStream_t stream) {
  RDD_EMU_RETURN_IF_STICKY();
  std::string why;
  Stream* s = resolve_stream(stream, &why);
  if (!s) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaMemsetAsync: " + why);
  return queue_memset("cudaMemsetAsync", p, value, count, s, false);
}

// ------------------------------------------------------------------------------------------------
// Streams
// ------------------------------------------------------------------------------------------------

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  RDD_EMU_RETURN_IF_STICKY();
  const int d = current_device();
  *stream = reinterpret_cast<cudaStream_t>(device_state(d).add_stream(d, (flags & cudaStreamNonBlocking) == 0));
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::string why;
  Stream* s = resolve_stream(stream, &why);
  if (!s || s->is_legacy())
    return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaStreamDestroy: " + (s ? std::string("the default stream") : why));
  device_state(s->device()).retire(s);  // queued work still runs, as on a GPU
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  RDD_EMU_RETURN_IF_STICKY();
  std::string why;
  Stream* s = resolve_stream(stream, &why);
  if (!s) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaStreamSynchronize: " + why);
  s->wait_for(s->submitted());
  return sticky_error();
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  RDD_EMU_RETURN_IF_STICKY();
  std::string why;
  Stream* s = resolve_stream(stream, &why);
  if (!s) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaStreamQuery: " + why);
  return s->reached(s->submitted()) ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* user_data) {
  RDD_EMU_RETURN_IF_STICKY();
  std::string why;
  Stream* s = resolve_stream(stream, &why);
  if (!s) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaLaunchHostFunc: " + why);
  submit(s, [fn, user_data] { fn(user_data); }, false);
  return cudaSuccess;
}

// ------------------------------------------------------------------------------------------------
// Events
// ------------------------------------------------------------------------------------------------

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  RDD_EMU_RETURN_IF_STICKY();
  auto* e = new Event;
  e->device = current_device();
  (void)flags;
  std::lock_guard<std::mutex> lock(events().mu);
  events().live.push_back(e);
  *event = reinterpret_cast<cudaEvent_t>(e);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  Event* e = as_event(event);
  std::lock_guard<std::mutex> lock(events().mu);
  auto it = std::find(events().live.begin(), events().live.end(), e);
  if (it == events().live.end())
    return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaEventDestroy: not a live event");
  events().live.erase(it);
  // Queued records and waits hold their tokens, not the event: it can go now.
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  RDD_EMU_RETURN_IF_STICKY();
  Event* e = as_event(event);
  if (!events().contains(e)) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaEventRecord: not a live event");
  std::string why;
  Stream* s = resolve_stream(stream, &why);
  if (!s) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaEventRecord: " + why);
  auto token = std::make_shared<Token>();
  {
    std::lock_guard<std::mutex> lock(e->mu);
    e->latest = token;
  }
  submit(s, [token] { token->complete(); }, true);
  return cudaSuccess;
}

static std::shared_ptr<Token> latest_token(Event* e) {
  std::lock_guard<std::mutex> lock(e->mu);
  return e->latest;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  RDD_EMU_RETURN_IF_STICKY();
  Event* e = as_event(event);
  if (!events().contains(e)) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaEventQuery: not a live event");
  auto token = latest_token(e);
  return !token || token->is_done() ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  RDD_EMU_RETURN_IF_STICKY();
  Event* e = as_event(event);
  if (!events().contains(e)) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaEventSynchronize: not a live event");
  if (auto token = latest_token(e)) token->wait();
  return sticky_error();
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  RDD_EMU_RETURN_IF_STICKY();
  Event* e = as_event(event);
  if (!events().contains(e)) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaStreamWaitEvent: not a live event");
  std::string why;
  Stream* s = resolve_stream(stream, &why);
  if (!s) return fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: cudaStreamWaitEvent: " + why);
  (void)flags;
  // The record that is the event's latest now; a later record does not count (CUDA's rule).
  if (auto token = latest_token(e)) submit(s, [token] { token->wait(); }, true);
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  (void)ms;
  (void)start;
  (void)end;
  return fail_call(cudaErrorNotSupported, "emulated CUDA: cudaEventElapsedTime is not emulated (timing needs a GPU)");
}
#endif
