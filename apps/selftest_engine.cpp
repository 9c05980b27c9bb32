// Engine checks for `rdd selftest`: the RNG against its known answers, and (with a GPU) the device
// copies, conversions and random fills against the CPU.
#include "apps/selftest.h"
#include "engine/numeric_check.h"
#include "engine/philox.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace rdd::apps {

namespace {
CheckRow from_comparison(const std::string& check, const std::string& device, const Comparison& c, Tolerance tol) {
  return {"engine", check, device, c.max_abs_err, tol.atol, c.ok, c.ok ? "" : c.message()};
}
}  // namespace

std::vector<CheckRow> selftest_engine(const SelftestOptions& o) {
  std::vector<CheckRow> rows;
  {  // Random123's all-zero known answer
    const philox::U32x4 r = philox::philox4x32_10(philox::U32x4{{0, 0, 0, 0}}, 0, 0);
    const bool ok = r.v[0] == 0x6627e8d5u && r.v[1] == 0xe169c58du && r.v[2] == 0xbc57ac4cu && r.v[3] == 0x9b00dbd8u;
    rows.push_back({"engine", "philox4x32-10 known answer", "cpu", 0, 0, ok, ok ? "" : "output differs from Random123"});
  }
  Tensor x = Tensor::empty({2, 3, 17, 19});
  fill_uniform(x, -1, 1, o.seed, 1);
  {
    const Tensor back = x.to_layout(Layout::NHWC).to_layout(Layout::NCHW);
    rows.push_back(from_comparison("NCHW->NHWC->NCHW round trip", "cpu", compare_tensors(back, x, {0, 0}), {0, 0}));
  }
  if (!o.gpu) return rows;
  const Device g = Device::cuda(0);
  rows.push_back(from_comparison("host->device->host copy", g.str(), compare_tensors(x.to(g).to(Device::cpu()), x, {0, 0}), {0, 0}));
  rows.push_back(from_comparison("NHWC reorder vs CPU", g.str(),
                                 compare_tensors(x.to(g).to_layout(Layout::NHWC), x.to_layout(Layout::NHWC), {0, 0}), {0, 0}));
  rows.push_back(from_comparison("bf16 conversion vs CPU", g.str(),
                                 compare_tensors(x.to(g).to_dtype(DType::bf16), x.to_dtype(DType::bf16), {0, 0}), {0, 0}));
  Tensor cu = Tensor::empty({4096}), gu = Tensor::empty({4096}, DType::f32, g);
  fill_uniform(cu, -3, 3, o.seed, 2);
  fill_uniform(gu, -3, 3, o.seed, 2);
  rows.push_back(from_comparison("philox uniform fill vs CPU", g.str(), compare_tensors(gu, cu, {0, 0}), {0, 0}));
  fill_normal(cu, 0, 1, o.seed, 3);
  fill_normal(gu, 0, 1, o.seed, 3);
  const Tolerance t = default_tolerance(DType::f32);
  rows.push_back(from_comparison("philox normal fill vs CPU", g.str(), compare_tensors(gu, cu, t), t));
  return rows;
}

}  // namespace rdd::apps
