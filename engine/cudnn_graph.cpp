// Convolutions through the cuDNN graph (backend) API, with a cache of finalised execution plans.
// See cudnn_graph.h for the contract. Only the backend entry points are used (cudnnBackendCreate /
// SetAttribute / Finalize / GetAttribute / Execute); no legacy cudnnConvolution* call, no frontend.
//
// One cache entry per configuration: tensor descriptors x, w, y (UIDs 1, 2, 3; dims always N,C,H,W with
// strides giving the layout), a convolution descriptor, one convolution operation, an operation graph,
// the heuristics' engine configs in preference order (the candidates, with an EngineChooser saying which
// are still in play), and the execution plan finalised from the chooser's pick. A call then only fills a
// variant pack (pointers + workspace) and executes on the compute stream; if that plan fails at its first
// execute, the entry moves on to the next candidate and the call is retried.
#include "engine/cudnn_graph.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "engine/error.h"

#if RDD_WITH_CUDA && !RDD_CUDA_EMULATED
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "engine/allocator.h"
#include "engine/cuda_check.h"
#include "engine/cuda_context.h"
#endif

namespace rdd::cudnn {

const char* conv_op_name(ConvOp op) {
  switch (op) {
    case ConvOp::forward: return "conv_forward";
    case ConvOp::backward_data: return "conv_backward_data";
    case ConvOp::backward_filter: return "conv_backward_filter";
  }
  return "conv";
}

int conv_output_size(int in, int kernel, int pad, int stride, int dilation) {
  RDD_CHECK(in >= 1 && kernel >= 1, "conv_output_size: input size ", in, " and kernel size ", kernel,
            " must both be at least 1");
  RDD_CHECK(pad >= 0 && stride >= 1 && dilation >= 1, "conv_output_size: pad ", pad, " must be >= 0, stride ",
            stride, " and dilation ", dilation, " >= 1");
  const int64_t span = int64_t(dilation) * (kernel - 1) + 1;
  const int64_t padded = int64_t(in) + 2 * int64_t(pad);
  RDD_CHECK(span <= padded, "conv_output_size: kernel ", kernel, " with dilation ", dilation, " spans ", span,
            " but the padded input is only ", padded, " (input ", in, " + 2 x pad ", pad, ")");
  return int((padded - span) / stride + 1);
}

namespace {

// The names of the three tensors in an op's role: (input-side, filter-side, output-side of the forward).
struct Roles {
  const char* x;
  const char* w;
  const char* y;
};
Roles roles(ConvOp op) {
  switch (op) {
    case ConvOp::forward: return {"x", "w", "y"};
    case ConvOp::backward_data: return {"dx", "w", "dy"};
    case ConvOp::backward_filter: return {"x", "dw", "dy"};
  }
  return {"x", "w", "y"};
}

std::string params_str(const ConvParams& p) {
  return detail::concat("pad (", p.pad_h, ",", p.pad_w, ") stride (", p.stride_h, ",", p.stride_w,
                        ") dilation (", p.dilation_h, ",", p.dilation_w, ") groups ", p.groups);
}

}  // namespace

void validate_conv_shapes(ConvOp op, const Tensor& x, const Tensor& w, const Tensor& y, const ConvParams& p) {
  const char* who = conv_op_name(op);
  const Roles r = roles(op);
  const Tensor* ts[3] = {&x, &w, &y};
  const char* names[3] = {r.x, r.w, r.y};
  for (int i = 0; i < 3; ++i) {
    RDD_CHECK(ts[i]->defined(), who, ": ", names[i], " is undefined");
    RDD_CHECK(ts[i]->ndim() == 4, who, ": ", names[i], " ", ts[i]->desc(), " is not 4-D (N, C, H, W)");
    RDD_CHECK(ts[i]->numel() > 0, who, ": ", names[i], " ", ts[i]->desc(), " is empty");
  }
  for (int i = 1; i < 3; ++i) {
    RDD_CHECK(ts[i]->dtype() == x.dtype(), who, ": ", r.x, " ", x.desc(), " and ", names[i], " ", ts[i]->desc(),
              " have different dtypes");
    RDD_CHECK(ts[i]->layout() == x.layout(), who, ": ", r.x, " ", x.desc(), " and ", names[i], " ",
              ts[i]->desc(), " have different layouts");
    RDD_CHECK(ts[i]->device() == x.device(), who, ": ", r.x, " ", x.desc(), " and ", names[i], " ",
              ts[i]->desc(), " are on different devices");
  }
  RDD_CHECK(p.pad_h >= 0 && p.pad_w >= 0 && p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 &&
                p.dilation_w >= 1 && p.groups >= 1,
            who, ": invalid parameters ", params_str(p), " (pad must be >= 0; stride, dilation, groups >= 1)");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t K = w.size(0), Cg = w.size(1), R = w.size(2), S = w.size(3);
  RDD_CHECK(Cg * p.groups == C, who, ": ", r.x, " ", x.desc(), " has ", C, " channels but ", r.w, " ", w.desc(),
            " expects ", Cg, " x groups ", p.groups);
  RDD_CHECK(K % p.groups == 0, who, ": ", r.w, " ", w.desc(), " has ", K, " filters, not divisible by groups ",
            p.groups);
  const int64_t span_h = int64_t(p.dilation_h) * (R - 1) + 1, span_w = int64_t(p.dilation_w) * (S - 1) + 1;
  const int64_t padded_h = H + 2 * int64_t(p.pad_h), padded_w = W + 2 * int64_t(p.pad_w);
  RDD_CHECK(span_h <= padded_h && span_w <= padded_w, who, ": ", r.w, " ", w.desc(), " with dilation (",
            p.dilation_h, ",", p.dilation_w, ") spans ", span_h, "x", span_w, " but ", r.x, " ", x.desc(),
            " padded by (", p.pad_h, ",", p.pad_w, ") is only ", padded_h, "x", padded_w);
  const int64_t P = (padded_h - span_h) / p.stride_h + 1, Q = (padded_w - span_w) / p.stride_w + 1;
  const Shape want{N, K, P, Q};
  RDD_CHECK(y.shape() == want, who, ": ", r.y, " ", y.desc(), " should be ", shape_str(want), " for ", r.x, " ",
            x.desc(), " and ", r.w, " ", w.desc(), " with ", params_str(p));
  // The output must not overlap an input (cuDNN reads the inputs while it writes the output). Byte
  // ranges, not start pointers: two views into one tensor may overlap without starting at the same place.
  const int out = op == ConvOp::forward ? 2 : op == ConvOp::backward_data ? 0 : 1;
  const auto begin = [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()); };
  for (int i = 0; i < 3; ++i) {
    if (i == out) continue;
    const bool overlap = begin(*ts[i]) < begin(*ts[out]) + ts[out]->nbytes() &&
                         begin(*ts[out]) < begin(*ts[i]) + ts[i]->nbytes();
    RDD_CHECK(!overlap, who, ": the output ", names[out], " ", ts[out]->desc(), " overlaps the memory of ", names[i],
              " ", ts[i]->desc());
  }
}

int64_t workspace_budget(size_t memory_bytes, size_t current_workspace_bytes) {
  constexpr size_t kFloor = size_t(256) << 20;
  return int64_t(std::max({kFloor, memory_bytes / 8, current_workspace_bytes}));
}

int64_t workspace_budget_of_device(size_t total_bytes, size_t available_bytes, size_t current_workspace_bytes) {
  // From the card's size, not its momentary free memory, so that the engine choice (and with it the
  // numerics) is the same in every run and on every rank; capped by what is available now, so that a
  // nearly full GPU does not pick an engine whose workspace cannot be allocated.
  const int64_t by_size = workspace_budget(total_bytes, current_workspace_bytes);
  return std::min<int64_t>(by_size, int64_t(std::max(available_bytes, current_workspace_bytes)));
}

namespace {
std::string mib(int64_t bytes) { return detail::concat(double(bytes) / double(1 << 20), " MiB"); }
}  // namespace

EngineChooser::EngineChooser(std::vector<std::string> labels)
    : labels_(std::move(labels)), state_(labels_.size(), State::untried), why_(labels_.size()) {}

int EngineChooser::choose(int64_t budget_bytes, const std::function<EngineAttempt(int)>& finalize) {
  int smallest = -1;  // the finalised candidate needing the least workspace, should none fit
  int64_t smallest_bytes = 0;
  for (int i = 0; i < size(); ++i) {
    if (state_[size_t(i)] == State::refused || state_[size_t(i)] == State::dropped) continue;
    const EngineAttempt a = finalize(i);
    if (!a.finalized || a.workspace_bytes < 0) {
      state_[size_t(i)] = State::refused;  // cuDNN's refusals do not change from call to call
      why_[size_t(i)] = a.finalized ? detail::concat("cuDNN reports a negative workspace size ", a.workspace_bytes)
                                    : "not finalised: " + a.refusal;
      continue;
    }
    if (a.workspace_bytes <= budget_bytes) {
      state_[size_t(i)] = State::chosen;
      why_[size_t(i)].clear();
      return i;
    }
    state_[size_t(i)] = State::over_budget;
    why_[size_t(i)] = "needs a workspace of " + mib(a.workspace_bytes) + ", over the budget of " + mib(budget_bytes);
    if (smallest < 0 || a.workspace_bytes < smallest_bytes) smallest = i, smallest_bytes = a.workspace_bytes;
  }
  if (smallest >= 0) {
    state_[size_t(smallest)] = State::chosen;
    why_[size_t(smallest)].clear();
  }
  return smallest;
}

void EngineChooser::drop(int candidate, const std::string& why) {
  RDD_CHECK(candidate >= 0 && candidate < size(), "EngineChooser::drop: candidate ", candidate, " of ", size());
  state_[size_t(candidate)] = State::dropped;
  why_[size_t(candidate)] = why;
}

int EngineChooser::in_play() const {
  return int(std::count_if(state_.begin(), state_.end(),
                           [](State s) { return s != State::refused && s != State::dropped; }));
}

std::string EngineChooser::refusals() const {
  std::string text;
  for (size_t i = 0; i < labels_.size(); ++i)
    if (!why_[i].empty()) text += "\n  " + labels_[i] + ": " + why_[i];
  return text;
}

namespace {
std::atomic<bool> g_allow_tf32{false};
}  // namespace
void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

#if !RDD_WITH_CUDA || RDD_CUDA_EMULATED

namespace {
[[noreturn]] void cpu_only(ConvOp op, const Tensor& x, const Tensor& w, const Tensor& y, const ConvParams& p) {
  validate_conv_shapes(op, x, w, y, p);
  fail(conv_op_name(op), RDD_CUDA_EMULATED ? ": this is an emulated-CUDA build, which has no cuDNN (layers run the CPU "
                                             "reference on the emulated device instead)"
                                           : ": this is a CPU-only build: cuDNN convolutions need a CUDA build",
       " (", roles(op).x, " ", x.desc(), ")");
}
}  // namespace

void conv_forward(const Tensor& x, const Tensor& w, Tensor& y, const ConvParams& p, float) {
  cpu_only(ConvOp::forward, x, w, y, p);
}
void conv_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const ConvParams& p, float) {
  cpu_only(ConvOp::backward_data, dx, w, dy, p);
}
void conv_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const ConvParams& p, float) {
  cpu_only(ConvOp::backward_filter, x, dw, dy, p);
}
PlanCacheStats plan_cache_stats() { return {}; }
void clear_plan_cache() {}
void inject_execute_failures_for_testing(int) {}

#else  // a real CUDA build

namespace {

constexpr int64_t kUidX = 1, kUidW = 2, kUidY = 3;
constexpr int64_t kMaxEngineConfigs = 64;  // per heuristic mode; the heuristics rank them best first

// One backend descriptor, destroyed with its owner.
class Descriptor {
 public:
  Descriptor() = default;  // null
  explicit Descriptor(cudnnBackendDescriptorType_t type) { RDD_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d_)); }
  ~Descriptor() { reset(); }
  Descriptor(Descriptor&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Descriptor& operator=(Descriptor&& o) noexcept {
    if (this != &o) {
      reset();
      d_ = std::exchange(o.d_, nullptr);
    }
    return *this;
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;

  cudnnBackendDescriptor_t get() const { return d_; }
  void reset() {
    if (d_) cudnnBackendDestroyDescriptor(d_);  // destruction cannot be reported; nothing to do on failure
    d_ = nullptr;
  }
  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count, const void* values) {
    RDD_CUDNN_CHECK(cudnnBackendSetAttribute(d_, name, type, count, values));
  }
  void set_i64(cudnnBackendAttributeName_t name, const int64_t* values, int64_t count) {
    set(name, CUDNN_TYPE_INT64, count, values);
  }
  void set_desc(cudnnBackendAttributeName_t name, const Descriptor& d) {
    cudnnBackendDescriptor_t v = d.get();
    set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v);
  }
  void finalize() { RDD_CUDNN_CHECK(cudnnBackendFinalize(d_)); }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

cudnnDataType_t cudnn_dtype(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    case DType::f16: return CUDNN_DATA_HALF;
    default: fail("cudnn_graph: no cuDNN data type for ", dtype_name(t));
  }
}

// The largest power of two (up to 16) that divides the address: what the tensor descriptor may promise.
int64_t byte_alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int64_t align = 16;
  while (align > 1 && a % uintptr_t(align) != 0) align /= 2;
  return align;
}

// A finalised tensor descriptor: dims in N,C,H,W order, strides from the layout.
Descriptor make_tensor(int64_t uid, DType dtype, Layout layout, const Shape& s, int64_t alignment) {
  const int64_t C = s[1], H = s[2], W = s[3];
  const int64_t dims[4] = {s[0], s[1], s[2], s[3]};
  std::array<int64_t, 4> strides;
  if (layout == Layout::NCHW) strides = {C * H * W, H * W, W, 1};
  else strides = {H * W * C, 1, W * C, C};
  const cudnnDataType_t dt = cudnn_dtype(dtype);
  Descriptor t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
  t.set_i64(CUDNN_ATTR_TENSOR_DIMENSIONS, dims, 4);
  t.set_i64(CUDNN_ATTR_TENSOR_STRIDES, strides.data(), 4);
  t.set_i64(CUDNN_ATTR_TENSOR_UNIQUE_ID, &uid, 1);
  t.set_i64(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, &alignment, 1);
  t.finalize();
  return t;
}

// What a plan is cached by: everything that went into its descriptors.
using PlanKey = std::array<int64_t, 25>;

struct Request {
  ConvOp op;
  const Tensor* x;  // the tensors in their forward roles (x, w, y) whatever the op
  const Tensor* w;
  const Tensor* y;
  ConvParams p;
  float beta;
  bool tf32 = allow_tf32();  // f32 on TF32 tensor cores allowed (read once per call)
};

PlanKey make_key(const Request& r) {
  uint32_t beta_bits = 0;
  std::memcpy(&beta_bits, &r.beta, sizeof beta_bits);
  const Tensor &x = *r.x, &w = *r.w, &y = *r.y;
  return {x.device().index, int64_t(r.op), int64_t(x.dtype()), int64_t(x.layout()),
          x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3), y.size(2), y.size(3),
          r.p.pad_h, r.p.pad_w, r.p.stride_h, r.p.stride_w, r.p.dilation_h, r.p.dilation_w, r.p.groups,
          int64_t(beta_bits), byte_alignment(x.raw()), byte_alignment(w.raw()), byte_alignment(y.raw()),
          int64_t(r.tf32 && x.dtype() == DType::f32)};
}

// "conv_forward of x f32[2,3,8,8] NCHW cuda:0, w ..., y ... with pad (1,1) ... groups 1, beta 0"
std::string describe(const Request& r) {
  const Roles n = roles(r.op);
  return detail::concat(conv_op_name(r.op), " of ", n.x, " ", r.x->desc(), ", ", n.w, " ", r.w->desc(), ", ", n.y,
                        " ", r.y->desc(), " with ", params_str(r.p), ", beta ", r.beta);
}

// What one candidate's engine is: its global index and numerical notes (for the preference order, the
// refusal list and the TF32 warning).
struct EngineInfo {
  const char* heuristics = "";  // the heuristic mode that offered it: "A" or "FALLBACK"
  int64_t global_index = -1;    // -1: cuDNN would not say
  bool notes_known = false;
  std::vector<cudnnBackendNumericalNote_t> notes;
};

EngineInfo engine_info(const Descriptor& cfg, const char* heuristics) {
  EngineInfo info;
  info.heuristics = heuristics;
  try {
    Descriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    cudnnBackendDescriptor_t e = engine.get();
    int64_t n = 0;
    RDD_CUDNN_CHECK(cudnnBackendGetAttribute(cfg.get(), CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                             1, &n, &e));
    int64_t index = -1;
    if (cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &index) ==
        CUDNN_STATUS_SUCCESS)
      info.global_index = index;
    std::array<cudnnBackendNumericalNote_t, CUDNN_NUMERICAL_NOTE_TYPE_COUNT> notes{};
    int64_t count = 0;
    RDD_CUDNN_CHECK(cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                             int64_t(notes.size()), &count, notes.data()));
    count = std::clamp<int64_t>(count, 0, int64_t(notes.size()));
    info.notes.assign(notes.begin(), notes.begin() + count);
    info.notes_known = true;
  } catch (const Error&) {
    // Unknown engine or notes: still a candidate, but after the ones we know to be good (see preferred).
  }
  return info;
}

const char* note_name(cudnnBackendNumericalNote_t note) {
  switch (note) {
    case CUDNN_NUMERICAL_NOTE_TENSOR_CORE: return "TENSOR_CORE";
    case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS: return "DOWN_CONVERT_INPUTS";
    case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION: return "REDUCED_PRECISION_REDUCTION";
    case CUDNN_NUMERICAL_NOTE_FFT: return "FFT";
    case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC: return "NONDETERMINISTIC";
    case CUDNN_NUMERICAL_NOTE_WINOGRAD: return "WINOGRAD";
    case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4: return "WINOGRAD_TILE_4x4";
    case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6: return "WINOGRAD_TILE_6x6";
    case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13: return "WINOGRAD_TILE_13x13";
    default: return "other";
  }
}

// "engine config 3 (engine 12, heuristics A, notes TENSOR_CORE DOWN_CONVERT_INPUTS)"
std::string engine_label(int position, const EngineInfo& info) {
  std::string notes;
  if (!info.notes_known) notes = " unknown";
  for (cudnnBackendNumericalNote_t note : info.notes) notes += std::string(" ") + note_name(note);
  if (notes.empty()) notes = " none";
  return detail::concat("engine config ", position + 1, " (engine ", info.global_index, ", heuristics ",
                        info.heuristics, ", notes", notes, ")");
}

bool has_note(const EngineInfo& info, cudnnBackendNumericalNote_t note) {
  return std::find(info.notes.begin(), info.notes.end(), note) != info.notes.end();
}

// f32 tensors on an engine that rounds them to TF32 (10-bit mantissa) on the tensor cores.
bool rounds_f32_to_tf32(const EngineInfo& info, DType dtype) {
  return dtype == DType::f32 &&
         (has_note(info, CUDNN_NUMERICAL_NOTE_TENSOR_CORE) || has_note(info, CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS));
}

// Engines we take only when nothing else works: see "Engine choice" in cudnn_graph.h. With tf32, f32
// convolutions may use TF32 tensor cores (set_allow_tf32).
bool preferred(const EngineInfo& info, DType dtype, bool tf32) {
  if (!info.notes_known) return false;
  if (has_note(info, CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) ||
      has_note(info, CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION))
    return false;
  return !((!tf32 && rounds_f32_to_tf32(info, dtype)) ||
           (dtype == DType::f32 && has_note(info, CUDNN_NUMERICAL_NOTE_FFT)));
}

// The heuristics' engine configs for the graph, best first (empty when this mode has none).
std::vector<Descriptor> engine_configs(const Descriptor& graph, cudnnBackendHeurMode_t mode) {
  Descriptor heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  heur.finalize();
  int64_t available = 0;
  RDD_CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                           0, &available, nullptr));
  const int64_t want = std::min(available, kMaxEngineConfigs);
  std::vector<Descriptor> cfgs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < want; ++i) {
    cfgs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(cfgs.back().get());
  }
  if (want == 0) return cfgs;
  int64_t got = 0;
  RDD_CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                           want, &got, raw.data()));
  while (int64_t(cfgs.size()) > std::max<int64_t>(got, 0)) cfgs.pop_back();
  return cfgs;
}

std::string cudnn_status_text(cudnnStatus_t s) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  std::string text = cudnnGetErrorString(s);
  if (detail[0]) text += std::string(" (") + detail + ")";
  return text;
}

// Everything a configuration's plans are built from, shared by them: the tensor, convolution, operation
// and graph descriptors, and the candidates — the heuristics' engine configs, preferred first.
struct Graph {
  std::vector<Descriptor> parts;    // tensors, convolution, operation, operation graph (creation order)
  std::vector<Descriptor> configs;  // the candidates
  std::vector<EngineInfo> engines;  // one per candidate
  std::vector<std::string> labels;  // one per candidate (engine_label)
  std::string heuristics_errors;    // heuristic modes that failed: context for a final error
  ~Graph() {
    while (!configs.empty()) configs.pop_back();  // newest first
    while (!parts.empty()) parts.pop_back();
  }
};

// A finalised execution plan from one candidate of a Graph.
struct Plan {
  std::shared_ptr<const Graph> graph;  // first member, so it outlives the plan descriptor
  Descriptor plan;
  int config = -1;  // the candidate (index into graph->configs)
  int64_t workspace_bytes = 0;
  int device = 0;
  mutable std::atomic<bool> executed{false};  // has run successfully at least once
};

std::shared_ptr<const Graph> build_graph(const Request& r, cudnnHandle_t handle) {
  auto g = std::make_shared<Graph>();
  const DType dtype = r.x->dtype();
  const Layout layout = r.x->layout();
  auto& parts = g->parts;
  parts.push_back(make_tensor(kUidX, dtype, layout, r.x->shape(), byte_alignment(r.x->raw())));
  parts.push_back(make_tensor(kUidW, dtype, layout, r.w->shape(), byte_alignment(r.w->raw())));
  parts.push_back(make_tensor(kUidY, dtype, layout, r.y->shape(), byte_alignment(r.y->raw())));
  const Descriptor &tx = parts[0], &tw = parts[1], &ty = parts[2];

  // The convolution: cross-correlation (what deep learning calls convolution), 2 spatial dims, f32
  // compute. Groups are implied by x's C / w's C.
  Descriptor conv(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t spatial_dims = 2;
  const int64_t pads[2] = {r.p.pad_h, r.p.pad_w}, strides[2] = {r.p.stride_h, r.p.stride_w},
                dilations[2] = {r.p.dilation_h, r.p.dilation_w};
  conv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  conv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  conv.set_i64(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, &spatial_dims, 1);
  conv.set_i64(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, pads, 2);
  conv.set_i64(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, pads, 2);
  conv.set_i64(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, strides, 2);
  conv.set_i64(CUDNN_ATTR_CONVOLUTION_DILATIONS, dilations, 2);
  conv.finalize();

  // The operation. alpha and beta are CUDNN_TYPE_FLOAT: the compute type is f32 (DOUBLE is for f64).
  const float alpha = 1.f, beta = r.beta;
  cudnnBackendDescriptorType_t op_type = CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR;
  if (r.op == ConvOp::backward_data) op_type = CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR;
  if (r.op == ConvOp::backward_filter) op_type = CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR;
  Descriptor op(op_type);
  switch (r.op) {
    case ConvOp::forward:
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv);
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, tx);
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, tw);
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, ty);
      op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
      op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
      break;
    case ConvOp::backward_data:
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, conv);
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, tx);
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, tw);
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, ty);
      op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
      op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
      break;
    case ConvOp::backward_filter:
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, conv);
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, tx);
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, tw);
      op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY, ty);
      op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
      op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
      break;
  }
  op.finalize();

  // The graph of that one operation. (cuDNN 9.8+ marks the graph's and the plan's HANDLE attribute
  // deprecated in favour of a device-property descriptor, but every 9.x honours it, and it names the
  // device the plan is for; it needs no extra descriptor.)
  Descriptor graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  graph.set_desc(CUDNN_ATTR_OPERATIONGRAPH_OPS, op);
  graph.finalize();

  // The candidates: heuristic mode A, then FALLBACK; preferred ones first (see cudnn_graph.h).
  std::vector<std::pair<Descriptor, EngineInfo>> first, second;
  for (cudnnBackendHeurMode_t m : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    const char* name = m == CUDNN_HEUR_MODE_A ? "A" : "FALLBACK";
    try {
      for (Descriptor& cfg : engine_configs(graph, m)) {
        EngineInfo info = engine_info(cfg, name);
        (preferred(info, dtype, r.tf32) ? first : second).emplace_back(std::move(cfg), std::move(info));
      }
    } catch (const Error& e) {
      g->heuristics_errors += std::string("\n  heuristics ") + name + ": " + e.what();
    }
  }
  for (auto& c : second) first.push_back(std::move(c));
  RDD_CHECK(!first.empty(), describe(r), ": cuDNN offers no engine for this convolution", g->heuristics_errors);
  for (auto& [cfg, info] : first) {
    g->labels.push_back(engine_label(int(g->configs.size()), info));
    g->configs.push_back(std::move(cfg));
    g->engines.push_back(std::move(info));
  }
  parts.push_back(std::move(conv));
  parts.push_back(std::move(op));
  parts.push_back(std::move(graph));
  return g;
}

// Finalises an execution plan from one engine config into `plan`. A config may be refused
// (NOT_SUPPORTED for these shapes or this GPU, or a runtime-compiled kernel that fails to build).
EngineAttempt finalize_plan(const Descriptor& cfg, cudnnHandle_t handle, Descriptor& plan) {
  try {
    Descriptor candidate(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    candidate.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    candidate.set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfg);
    const cudnnStatus_t s = cudnnBackendFinalize(candidate.get());
    if (s != CUDNN_STATUS_SUCCESS) return {false, 0, cudnn_status_text(s)};
    int64_t ws = 0, n = 0;
    RDD_CUDNN_CHECK(cudnnBackendGetAttribute(candidate.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                             CUDNN_TYPE_INT64, 1, &n, &ws));
    plan = std::move(candidate);
    return {true, ws, ""};
  } catch (const Error& e) {
    return {false, 0, e.what()};
  }
}

// The workspace budget for a plan built now on the current device (see workspace_budget).
int64_t workspace_budget_now(CudaContext& ctx) {
  size_t free = 0, total = 0;
  RDD_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return workspace_budget_of_device(total, free + cuda_allocator(ctx.device()).stats().cached_bytes,
                                    ctx.workspace_size());
}

// One configuration in the cache: its graph, which candidates are still in play, and the current plan.
struct Entry {
  std::shared_ptr<const Graph> graph;
  EngineChooser chooser;
  std::shared_ptr<const Plan> plan;
};

// The cache. Plans are shared_ptrs so that clearing the cache while another thread executes a plan it
// looked up stays safe. Building happens under the lock: one build per configuration, never two.
struct Cache {
  std::mutex mu;
  std::map<PlanKey, Entry> entries;
  // Plans that failed at their first execute and were replaced: work they queued before failing may
  // still be in flight, so they are destroyed only by clear_plan_cache, after waiting for the devices.
  std::vector<std::shared_ptr<const Plan>> retired;
  std::set<PlanKey> warned_tf32;  // configurations already reported on stderr (once per process)
  PlanCacheStats stats;
};
Cache& cache() {
  static auto* c = new Cache();  // never destroyed: no cuDNN calls from static destructors at exit
  return *c;
}

std::atomic<int> injected_execute_failures{0};

bool take_injected_failure() {
  int n = injected_execute_failures.load();
  while (n > 0 && !injected_execute_failures.compare_exchange_weak(n, n - 1)) {
  }
  return n > 0;
}

// An f32 configuration that ends up on a TF32 engine gets one line on stderr: f32 means f32 otherwise.
void warn_if_tf32(Cache& c, const Request& r, const PlanKey& key, const Plan& plan) {
  if (r.tf32 || !rounds_f32_to_tf32(plan.graph->engines[size_t(plan.config)], r.x->dtype())) return;
  if (!c.warned_tf32.insert(key).second) return;
  std::fprintf(stderr,
               "rdd: warning: %s: no engine without TF32 could run it within the workspace budget; using %s, which "
               "rounds the f32 inputs to TF32 (10-bit mantissa)\n",
               describe(r).c_str(), plan.graph->labels[size_t(plan.config)].c_str());
}

// The next plan for an entry: the chooser's pick among the candidates still in play; throws (naming the
// op, the shapes and why each candidate was passed over) when none is left. Called under the cache lock.
std::shared_ptr<const Plan> next_plan(Cache& c, const Request& r, const PlanKey& key, Entry& e, CudaContext& ctx) {
  const Graph& g = *e.graph;
  const cudnnHandle_t handle = ctx.cudnn();
  const int64_t budget = workspace_budget_now(ctx);
  // The finalised plans (and their workspace sizes) the chooser may pick, over-budget fallbacks included.
  std::map<int, std::pair<Descriptor, int64_t>> finalized;
  const int chosen = e.chooser.choose(budget, [&](int i) {
    Descriptor plan;
    const EngineAttempt a = finalize_plan(g.configs[size_t(i)], handle, plan);
    if (a.finalized) finalized[i] = {std::move(plan), a.workspace_bytes};
    return a;
  });
  if (chosen < 0)
    fail(describe(r), ": none of the ", e.chooser.size(), " engine configs cuDNN offered could run it (workspace ",
         "budget ", mib(budget), "):", e.chooser.refusals(), g.heuristics_errors);
  auto plan = std::make_shared<Plan>();
  plan->graph = e.graph;
  plan->plan = std::move(finalized.at(chosen).first);
  plan->workspace_bytes = finalized.at(chosen).second;
  plan->config = chosen;
  plan->device = ctx.device();
  warn_if_tf32(c, r, key, *plan);
  return plan;
}

// The plan for a configuration: cached, or built (graph, candidates, the first pick) and cached.
std::shared_ptr<const Plan> get_plan(const Request& r, const PlanKey& key, CudaContext& ctx) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.entries.find(key);
  if (it != c.entries.end()) {
    ++c.stats.hits;
    return it->second.plan;
  }
  ++c.stats.misses;
  try {
    const std::shared_ptr<const Graph> graph = build_graph(r, ctx.cudnn());
    Entry entry{graph, EngineChooser(graph->labels), nullptr};
    entry.plan = next_plan(c, r, key, entry, ctx);
    it = c.entries.emplace(key, std::move(entry)).first;
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind(conv_op_name(r.op), 0) == 0) throw;  // already names the op and the shapes
    fail(describe(r), ": building the cuDNN plan failed:\n", what);
  }
  c.stats.plans = c.entries.size();
  return it->second.plan;
}

// `failed` did not run at its first execute (for `why`): the configuration moves on to its next
// candidate, unless another thread got there first. Throws when no candidate is left; the entry is
// then dropped, so that a later call starts afresh.
std::shared_ptr<const Plan> replace_plan(const Request& r, const PlanKey& key,
                                         const std::shared_ptr<const Plan>& failed, const std::string& why,
                                         CudaContext& ctx) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.entries.find(key);
    if (it != c.entries.end()) {
      Entry& e = it->second;
      if (e.plan != failed) return e.plan;  // already replaced by another thread
      c.retired.push_back(failed);
      e.chooser.drop(failed->config, "failed at its first execute: " + why);
      try {
        e.plan = next_plan(c, r, key, e, ctx);
      } catch (const Error&) {
        c.entries.erase(it);
        c.stats.plans = c.entries.size();
        throw;
      }
      ++c.stats.replaced;
      return e.plan;
    }
  }
  return get_plan(r, key, ctx);  // the cache was cleared meanwhile: build afresh
}

void run(const Request& r) {
  validate_conv_shapes(r.op, *r.x, *r.w, *r.y, r.p);
  const char* who = conv_op_name(r.op);
  const Roles n = roles(r.op);
  RDD_CHECK(r.x->device().is_cuda(), who, ": ", n.x, " ", r.x->desc(),
            " is not on a GPU: cuDNN convolutions need cuda tensors (the CPU reference lives in layers/)");
  const DType dt = r.x->dtype();
  RDD_CHECK(dt == DType::f32 || dt == DType::bf16 || dt == DType::f16, who, ": ", n.x, " ", r.x->desc(), " is ",
            dtype_name(dt), "; cuDNN convolutions take f32, bf16 or f16");
  RDD_CHECK(std::isfinite(r.beta), who, ": beta ", r.beta, " is not finite");

  const int dev = r.x->device().index;
  CudaDeviceGuard guard(dev);
  CudaContext& ctx = cuda_context(dev);
  const cudnnHandle_t handle = ctx.cudnn();
  const PlanKey key = make_key(r);
  std::shared_ptr<const Plan> plan = get_plan(r, key, ctx);

  int64_t uids[3] = {kUidX, kUidW, kUidY};
  void* pointers[3] = {r.x->raw(), r.w->raw(), r.y->raw()};
  // Each failed first execute drops a candidate, so this ends: with a run, or with replace_plan's error.
  for (;;) {
    void* workspace = plan->workspace_bytes > 0 ? ctx.workspace(size_t(plan->workspace_bytes)) : nullptr;
    Descriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack.set_i64(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, uids, 3);
    pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, pointers);
    pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    pack.finalize();
    const bool injected = take_injected_failure();
    const cudnnStatus_t s =
        injected ? CUDNN_STATUS_EXECUTION_FAILED : cudnnBackendExecute(handle, plan->plan.get(), pack.get());
    if (s == CUDNN_STATUS_SUCCESS) {
      plan->executed.store(true);
      return;
    }
    const std::string why = injected ? "CUDNN_STATUS_EXECUTION_FAILED (injected by a test)" : cudnn_status_text(s);
    // A plan that has run before works: a failure now is not about the engine choice (a bad pointer, a
    // sticky CUDA error), so it is reported, not retried on another engine.
    RDD_CHECK(!plan->executed.load(), describe(r), ": cuDNN failed to execute ",
              plan->graph->labels[size_t(plan->config)], ", which has run before: ", why);
    // Another engine is tried only when this one could not run here (EXECUTION_FAILED, NOT_SUPPORTED) ...
    const int category = int(s) / 1000 * 1000;
    RDD_CHECK(category == CUDNN_STATUS_EXECUTION_FAILED || category == CUDNN_STATUS_NOT_SUPPORTED,
              describe(r), ": cuDNN failed to execute ", plan->graph->labels[size_t(plan->config)], ": ", why);
    // ... and the device is healthy: a sticky CUDA error (an earlier kernel's bad address) fails every engine.
    const cudaError_t health = cudaStreamQuery(ctx.compute_stream());
    RDD_CHECK(health == cudaSuccess || health == cudaErrorNotReady, describe(r), ": cuDNN failed to execute (", why,
              ") on a GPU in error: ", cudaGetErrorName(health), ": ", cudaGetErrorString(health));
    cudaGetLastError();  // a launch error of the failed engine is not the next one's
    // With beta ≠ 0 the output is an accumulator (dw += ...): an engine that failed half way may have
    // written part of it already, so a retry could count that part twice. Report instead.
    RDD_CHECK(r.beta == 0.f, describe(r), ": cuDNN failed to execute ",
              plan->graph->labels[size_t(plan->config)], " (", why,
              ") into an accumulated output (beta ", r.beta, "), which a retry could count twice");
    plan = replace_plan(r, key, plan, why, ctx);
  }
}

}  // namespace

// x: (N, C, H, W), w: (K, C/groups, R, S) → y: (N, K, P, Q); y = conv(x, w) + beta·y
void conv_forward(const Tensor& x, const Tensor& w, Tensor& y, const ConvParams& p, float beta) {
  run({ConvOp::forward, &x, &w, &y, p, beta});
}

// dy: (N, K, P, Q), w: (K, C/groups, R, S) → dx: (N, C, H, W); dx = conv_transpose(dy, w) + beta·dx
void conv_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const ConvParams& p, float beta) {
  run({ConvOp::backward_data, &dx, &w, &dy, p, beta});
}

// x: (N, C, H, W), dy: (N, K, P, Q) → dw: (K, C/groups, R, S); dw = corr(x, dy) + beta·dw
void conv_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const ConvParams& p, float beta) {
  run({ConvOp::backward_filter, &x, &dw, &dy, p, beta});
}

PlanCacheStats plan_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void clear_plan_cache() {
  Cache& c = cache();
  std::map<PlanKey, Entry> doomed;
  std::vector<std::shared_ptr<const Plan>> retired;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    doomed.swap(c.entries);
    retired.swap(c.retired);
    c.stats = {};
  }
  // Work already queued may still use a plan: wait for the devices before destroying descriptors.
  std::set<int> devices;
  for (const auto& [key, entry] : doomed) devices.insert(entry.plan->device);
  for (const auto& plan : retired) devices.insert(plan->device);
  for (int d : devices) {
    CudaDeviceGuard guard(d);
    cuda_context(d).synchronize();
  }
  doomed.clear();
  retired.clear();
}

void inject_execute_failures_for_testing(int n) { injected_execute_failures.store(std::max(n, 0)); }

#endif  // a real CUDA build

}  // namespace rdd::cudnn
