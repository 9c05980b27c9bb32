// How an ONNX graph computes an adaptive average pool (PyTorch's bins, layers/pooling.h) exactly, one axis
// at a time. Along an axis of size `in` pooled to `out` bins, bin i averages [⌊i·in/out⌋, ⌈(i+1)·in/out⌉):
//
//   whole         out == 1: the mean of the whole axis (ReduceMean; GlobalAveragePool when both axes are)
//   uniform       in known and a multiple of out: equal, disjoint bins of in/out (AveragePool, kernel = stride)
//   bins          in known, not a multiple: bins of unequal size that may overlap (8 → 3: [0,3) [2,6) [5,8)),
//                 which no AveragePool window expresses: one Slice + ReduceMean per bin, concatenated
//   runtime_bins  in unknown (a dynamic input size): the same Slice + ReduceMean per bin, with the bounds
//                 computed in the graph from the tensor's shape (integer Mul / Add / Div on int64)
//
// The mean of a rectangle is the mean over rows of the means over columns, so pooling the two axes one
// after the other is the same function as PyTorch's 2-D bins. Every form is exact up to f32 summation order.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rdd::deploy {

enum class AxisPoolForm { whole, uniform, bins, runtime_bins };

struct AxisPoolPlan {
  AxisPoolForm form = AxisPoolForm::whole;
  int64_t in = -1;  // −1: known only at run time
  int64_t out = 1;
  std::vector<std::pair<int64_t, int64_t>> bins;  // [begin, end) per output index; empty for runtime_bins
  std::string describe() const;                   // "8→3 as Slice+ReduceMean over bins [0,3) [2,6) [5,8)"
};

// in: the axis size (−1 when dynamic); out ≥ 1. Refuses out < 1 or in == 0.
AxisPoolPlan plan_axis_pool(int64_t in, int64_t out);

}  // namespace rdd::deploy
