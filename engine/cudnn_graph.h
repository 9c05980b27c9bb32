// Convolutions on the GPU through the cuDNN graph (backend) API — forward, backward-data and
// backward-filter — with execution plans cached by (op, shapes, dtype, layout, conv params).
//
// cuDNN 9 deprecates the legacy cudnnConvolution* entry points; rdd uses none of them. Each call
// here builds (once per configuration) an operation graph with a single convolution node, asks the
// heuristics for engine configs, finalises the first that works as an execution plan, and caches it;
// later calls with the same configuration only fill a variant pack and execute on the device's
// compute stream, with scratch memory from the device's workspace.
//
// Shapes (logical NCHW order whatever the layout; all tensors on the same cuda device, same dtype
// and layout):
//   x  (N, C, H, W)           w  (K, C/groups, R, S)          y  (N, K, P, Q)
//   P = (H + 2·pad_h − dil_h·(R − 1) − 1) / stride_h + 1, likewise Q.
//
//   conv_forward:          y  = conv(x, w)        + beta·y
//   conv_backward_data:    dx = conv_transpose(dy, w) + beta·dx
//   conv_backward_filter:  dw = corr(x, dy)      + beta·dw      (beta = 1 accumulates)
//
// Supported: f32, bf16 and f16 tensors in NCHW or NHWC (compute f32). Anything else is refused with a
// message naming the op and the tensors.
//
// Engine choice (per configuration): the heuristics' configs (mode A, then FALLBACK) are candidates in
// order, first the ones without numerical notes we avoid — nondeterministic engines (atomics: runs
// would not be bit-reproducible), reduced-precision reductions, and for f32 tensors TF32 tensor cores
// (TENSOR_CORE / DOWN_CONVERT_INPUTS) and FFT, so f32 means f32 — then the others. The plan is the first
// candidate that finalises with a workspace within the budget (workspace_budget below); when every one
// that finalises needs more, the one that needs least. An f32 configuration that ends up on a TF32
// engine says so once on stderr. A plan that fails at its first execute (EXECUTION_FAILED or
// NOT_SUPPORTED, on a healthy GPU, into an output it overwrites: beta 0) is replaced by the next
// candidate and the call retried; only when none is left does the call throw, naming the op, the
// shapes and why each candidate was passed over. Any other failure is an error: after a plan has run,
// on a GPU in error, or with beta ≠ 0 (an accumulated output, dw += ..., that a half-done engine may
// already have changed).
// beta is part of the operation graph, so each beta value has its own plan; so has each pointer
// alignment (16 bytes, or less for views into a tensor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace rdd::cudnn {

struct ConvParams {
  int pad_h = 0, pad_w = 0;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
};

// Output spatial size for an input size (the formula above); throws when the kernel does not fit.
int conv_output_size(int in, int kernel, int pad, int stride, int dilation);

void conv_forward(const Tensor& x, const Tensor& w, Tensor& y, const ConvParams& p, float beta = 0.f);
void conv_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const ConvParams& p, float beta = 0.f);
void conv_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const ConvParams& p, float beta = 0.f);

struct PlanCacheStats {
  size_t plans = 0;     // distinct configurations built
  size_t hits = 0;      // calls served by a cached plan
  size_t misses = 0;    // calls that had to build one
  size_t replaced = 0;  // plans that failed at their first execute and gave way to the next engine config
};
PlanCacheStats plan_cache_stats();
// Destroys every cached plan (after waiting for the devices that used them) and resets the counters.
void clear_plan_cache();

// Which convolution an entry point computes.
enum class ConvOp { forward, backward_data, backward_filter };
const char* conv_op_name(ConvOp op);  // "conv_forward", "conv_backward_data", "conv_backward_filter"

// The argument checks every entry point runs before touching cuDNN. Works on tensors of any device
// (a CPU convolution reference can share it) and any dtype. The tensors in their roles of the formula
// above: forward (x, w, y), backward_data (dx, w, dy), backward_filter (x, dw, dy). Checks: all three
// defined, 4-D and non-empty, with the same dtype, layout and device; pad ≥ 0, stride, dilation and
// groups ≥ 1; x's C == w's C × groups; K divisible by groups; the kernel fits the padded input; the
// third tensor is exactly (N, K, P, Q); the output is not one of the inputs. Throws rdd::Error naming
// the op and the shapes, e.g. "conv_forward: x f32[2,3,8,8] NCHW cuda:0 has 3 channels but
// w f32[16,4,3,3] expects 4 × groups 1".
void validate_conv_shapes(ConvOp op, const Tensor& x, const Tensor& w, const Tensor& y, const ConvParams& p);

// ---- Engine choice, as pure bookkeeping (no cuDNN calls), so the CPU suite can test it ----------------

// The workspace an engine may ask for: max(256 MiB, 1/8 of `memory_bytes`, the workspace the device
// already holds). 1/8 leaves the rest to activations, which dominate a training step; the 256 MiB
// floor keeps the fast engines of large convolutions (which want tens to hundreds of MiB) available;
// what the device already holds costs nothing more.
int64_t workspace_budget(size_t memory_bytes, size_t current_workspace_bytes);
// The budget used: workspace_budget of the card's total memory (the same in every run and on every rank,
// so the same engines are chosen), capped by what is available now (free + the allocator's cache,
// at least the workspace already held).
int64_t workspace_budget_of_device(size_t total_bytes, size_t available_bytes, size_t current_workspace_bytes);

// What finalising one candidate gave.
struct EngineAttempt {
  bool finalized = false;
  int64_t workspace_bytes = 0;  // when finalised
  std::string refusal;          // cuDNN's words when not
};

// The candidates of one configuration (the heuristics' engine configs, preferred first) and which of
// them are still in play; kept with the cached plan so that a plan failing at execute can be replaced.
class EngineChooser {
 public:
  // One label per candidate, in preference order, used in the refusal list ("engine config 3 (...)").
  explicit EngineChooser(std::vector<std::string> labels);

  // The first candidate still in play that `finalize` accepts with a workspace ≤ budget_bytes; when
  // every one that finalises needs more, the one needing least (the earliest on ties); -1 when none
  // finalises. `finalize(i)` is called in order, only until a candidate fits; one it refuses (or that
  // reports a negative workspace) is out for good, one over the budget stays in play as a fallback.
  int choose(int64_t budget_bytes, const std::function<EngineAttempt(int)>& finalize);
  // The candidate `choose` returned failed at execute: it is out for good, for this reason.
  void drop(int candidate, const std::string& why);

  int size() const { return int(labels_.size()); }
  int in_play() const;  // candidates neither refused nor dropped
  // Why each candidate was passed over, one line each in order ("\n  engine config 2 (...): ...").
  std::string refusals() const;

 private:
  enum class State { untried, refused, over_budget, chosen, dropped };
  std::vector<std::string> labels_;
  std::vector<State> state_;
  std::vector<std::string> why_;  // the latest reason per candidate; empty for untried or chosen
};

// f32 convolutions on TF32 tensor cores (inputs rounded to a 10-bit mantissa, f32 accumulation: about
// 1e-3 relative error, several times faster; PyTorch allows it for cuDNN convolutions by default) or
// strictly in f32 (the default here: what the parity tests compare). Process-wide, read at each call;
// plans are cached per setting. `rdd train|distill|eval|predict|bench --tf32` turn it on.
void set_allow_tf32(bool allow);
bool allow_tf32();

// For tests only: the next `n` cuDNN executes (any configuration, any thread) fail as if cuDNN had
// returned CUDNN_STATUS_EXECUTION_FAILED, without running. 0 turns it off. Lets the GPU suite exercise
// the replace-on-first-failure path, which a healthy cuDNN never takes.
void inject_execute_failures_for_testing(int n);

}  // namespace rdd::cudnn
