// Where a step's time goes: by kind of operation (`rdd bench --ops`) or by named layer (`--layers`).
//
//   op_profile_enable(true);                            // OpLevel::kind
//   { OpScope s("conv2d forward", x.device(), flops, bytes); ... the op ... }
//   for (const OpStats& o : op_profile_take()) ...   // in first-seen order, then cleared
//
// Two levels, one active at a time: kind scopes sit in the layer functions (conv2d_forward, ...);
// layer scopes sit in the modules that have a name (Conv2d "pretrained.layer1.0.conv1", BatchNorm2d).
// Scopes of the inactive level do nothing. Ops outside any named module (ReLU, add, resize, losses)
// have no layer scope: at the layer level their time shows as the gap between the layers and the step.
//
// Off by default, and then an OpScope costs one relaxed atomic load. On, a scope waits for the device
// before and after the op, so a GPU op's time is its own (the price: the overlap of a real step is
// gone, and every op pays a synchronisation, so the sum of the ops exceeds a free-running step a
// little). Only the outermost scope of a thread counts: an op built from other ops (a backward that
// runs a forward convolution) is timed once, under its own name. `flops` (2 per multiply-add) and
// `bytes` (each input read once, each output written once: the fewest a kernel must move) give the
// achieved rates; 0 where they do not apply.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/device.h"

namespace rdd {

enum class OpLevel { kind, layer };

void op_profile_enable(bool on, OpLevel level = OpLevel::kind);
bool op_profile_enabled();  // at any level

struct OpStats {
  std::string name;  // "conv2d forward", "batchnorm2d backward", ...
  int64_t calls = 0;
  double ms = 0;     // wall time, device synchronised at both ends
  double flops = 0;  // summed over calls
  double bytes = 0;  // summed over calls
};

// The table so far, in the order each name was first seen, and clears it.
std::vector<OpStats> op_profile_take();

// While one is alive, rows recorded on this thread get `prefix` in front of their name ("teacher: "): two
// models with the same parameter names — a teacher and its student — stay apart at the layer level.
class OpLabelPrefix {
 public:
  explicit OpLabelPrefix(const char* prefix);
  ~OpLabelPrefix();
  OpLabelPrefix(const OpLabelPrefix&) = delete;
  OpLabelPrefix& operator=(const OpLabelPrefix&) = delete;

 private:
  const char* previous_;
};

class OpScope {
 public:
  // `name` must stay valid until the scope closes (the table keeps a copy).
  OpScope(const char* name, Device device, double flops = 0, double bytes = 0, OpLevel level = OpLevel::kind);
  ~OpScope();
  // Work known only once the op ran (a module learns its output shape): added to this call's counts.
  void add_work(double flops, double bytes) {
    flops_ += flops;
    bytes_ += bytes;
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  const char* name_ = nullptr;  // null: not timing (profiling off, or nested in another scope)
  bool counted_ = false;        // this scope is in the thread's depth count
  Device device_;
  double flops_ = 0, bytes_ = 0;
  int64_t start_ns_ = 0;
};

}  // namespace rdd
