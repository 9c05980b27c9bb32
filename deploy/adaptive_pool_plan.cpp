#include "deploy/adaptive_pool_plan.h"

#include "engine/error.h"
#include "layers/pooling_index.h"

namespace rdd::deploy {

AxisPoolPlan plan_axis_pool(int64_t in, int64_t out) {
  RDD_CHECK(out >= 1, "adaptive pool: ", out, " output bins (at least 1)");
  RDD_CHECK(in == -1 || in >= 1, "adaptive pool: input size ", in, " (at least 1)");
  AxisPoolPlan p;
  p.in = in;
  p.out = out;
  if (out == 1) {
    p.form = AxisPoolForm::whole;
  } else if (in < 0) {
    p.form = AxisPoolForm::runtime_bins;
    return p;
  } else {
    p.form = in % out == 0 ? AxisPoolForm::uniform : AxisPoolForm::bins;
  }
  if (in > 0)
    for (int64_t i = 0; i < out; ++i)
      p.bins.emplace_back(layers::pool_index::bin_start(i, in, out), layers::pool_index::bin_end(i, in, out));
  return p;
}

std::string AxisPoolPlan::describe() const {
  std::string s = in < 0 ? "dynamic" : std::to_string(in);
  s += "→";
  s += std::to_string(out);
  switch (form) {
    case AxisPoolForm::whole: return s + " as the mean of the whole axis";
    case AxisPoolForm::uniform: return s + " as AveragePool, kernel = stride = " + std::to_string(in / out);
    case AxisPoolForm::runtime_bins: {
      const std::string o = std::to_string(out);
      return s + " as Slice+ReduceMean per bin, bounds ⌊i·n/" + o + "⌋, ⌈(i+1)·n/" + o + "⌉ computed from the shape";
    }
    case AxisPoolForm::bins: break;
  }
  s += " as Slice+ReduceMean over bins";
  for (const auto& [b, e] : bins) {
    s += " [";
    s += std::to_string(b);
    s += ",";
    s += std::to_string(e);
    s += ")";
  }
  return s;
}

}  // namespace rdd::deploy
