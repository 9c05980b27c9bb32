// `rdd bench --model NAME --mode forward --fold-bn`: the forward an exported model runs — the main head only
// (no aux head), every BatchNorm folded into the convolution before it (deploy/graph_executor.h) — timed on
// the same images and device as the eval forward, with the same graph unfolded beside it, so what dropping
// the aux head and what folding each save are visible. train/bench_model.h runs the bench but does not see
// deploy/ (dependencies point one way): apps/cmd_bench.cpp hands this function to it as its
// train::GraphForwardTimer.
#pragma once

#include "engine/tensor.h"
#include "models/seg_model.h"

namespace rdd::apps {

// Milliseconds per forward of the recorded main-head graph on `images` (N, 3, H, W), BN folded or kept, on
// the model's device: the mean of `iterations` runs after `warmup`, the device synchronised around each.
double time_graph_forward(const models::SegModel& model, const Tensor& images, bool fold_bn, int warmup,
                          int iterations);

}  // namespace rdd::apps
