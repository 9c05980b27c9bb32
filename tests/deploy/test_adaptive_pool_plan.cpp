// plan_axis_pool: the forms (whole, uniform, bins, runtime_bins), PyTorch's bin boundaries (the same as
// layers/pooling_index.h, brute-forced here), and the separability the ONNX graph relies on: pooling rows,
// then columns, by those bins is rdd's 2-D adaptive average pool.
#include <cmath>

#include "deploy/adaptive_pool_plan.h"
#include "harness.h"
#include "layers/pooling.h"

using namespace rdd;
using deploy::AxisPoolForm;

TEST_CASE("plan_axis_pool picks the form from the sizes") {
  CHECK(deploy::plan_axis_pool(64, 1).form == AxisPoolForm::whole);
  CHECK(deploy::plan_axis_pool(-1, 1).form == AxisPoolForm::whole);
  CHECK(deploy::plan_axis_pool(64, 2).form == AxisPoolForm::uniform);
  CHECK(deploy::plan_axis_pool(8, 8).form == AxisPoolForm::uniform);
  CHECK(deploy::plan_axis_pool(64, 3).form == AxisPoolForm::bins);
  CHECK(deploy::plan_axis_pool(128, 6).form == AxisPoolForm::bins);
  CHECK(deploy::plan_axis_pool(2, 3).form == AxisPoolForm::bins);  // fewer rows than bins: they repeat
  CHECK(deploy::plan_axis_pool(-1, 6).form == AxisPoolForm::runtime_bins);
  CHECK(deploy::plan_axis_pool(-1, 6).bins.empty());
  CHECK(deploy::plan_axis_pool(8, 3).describe() == "8→3 as Slice+ReduceMean over bins [0,3) [2,6) [5,8)");
  CHECK(deploy::plan_axis_pool(12, 3).describe() == "12→3 as AveragePool, kernel = stride = 4");
}

TEST_CASE("the bins are PyTorch's: [⌊i·n/o⌋, ⌈(i+1)·n/o⌉)") {
  for (int64_t n = 1; n <= 40; ++n)
    for (int64_t o = 1; o <= 8; ++o) {
      const deploy::AxisPoolPlan p = deploy::plan_axis_pool(n, o);
      REQUIRE(p.bins.size() == size_t(o));
      for (int64_t i = 0; i < o; ++i) {
        const int64_t begin = int64_t(std::floor(double(i) * double(n) / double(o)));
        const int64_t end = int64_t(std::ceil(double(i + 1) * double(n) / double(o)));
        INFO("n " << n << " o " << o << " i " << i);
        CHECK(p.bins[size_t(i)].first == begin);
        CHECK(p.bins[size_t(i)].second == end);
      }
      if (n % o == 0)  // uniform: the bins are the AveragePool windows kernel = stride = n/o
        for (int64_t i = 0; i < o; ++i) CHECK(p.bins[size_t(i)] == std::make_pair(i * (n / o), (i + 1) * (n / o)));
    }
}

TEST_CASE("rows then columns, each by its bins, is the 2-D adaptive average pool") {
  const struct {
    int h, w, oh, ow;
  } cases[] = {{8, 10, 3, 3}, {8, 10, 6, 6}, {7, 11, 6, 2}, {2, 3, 6, 6}, {64, 128, 3, 6}};
  uint64_t seed = 1;
  for (const auto& c : cases) {
    INFO(c.h << "x" << c.w << " → " << c.oh << "x" << c.ow);
    const Tensor x = test::random_normal({1, 2, c.h, c.w}, seed++, 0.0, 1.0, DType::f64);
    const Tensor want = layers::adaptive_avgpool2d_forward(x, c.oh, c.ow);  // (1, 2, oh, ow)
    const deploy::AxisPoolPlan rows = deploy::plan_axis_pool(c.h, c.oh), cols = deploy::plan_axis_pool(c.w, c.ow);
    for (int64_t ch = 0; ch < 2; ++ch)
      for (int i = 0; i < c.oh; ++i)
        for (int j = 0; j < c.ow; ++j) {
          double mean_of_row_means = 0;
          const auto [r0, r1] = rows.bins[size_t(i)];
          const auto [c0, c1] = cols.bins[size_t(j)];
          for (int64_t r = r0; r < r1; ++r) {
            double row = 0;
            for (int64_t q = c0; q < c1; ++q) row += x.at<double>((ch * c.h + r) * c.w + q);
            mean_of_row_means += row / double(c1 - c0);
          }
          mean_of_row_means /= double(r1 - r0);
          CHECK(mean_of_row_means == doctest::Approx(want.at<double>((ch * c.oh + i) * c.ow + j)).epsilon(1e-12));
        }
  }
}

TEST_CASE("plan_axis_pool refuses no bins and an empty axis") {
  CHECK(test::error_message([] { deploy::plan_axis_pool(8, 0); }).find("0 output bins") != std::string::npos);
  CHECK(test::error_message([] { deploy::plan_axis_pool(0, 2); }).find("input size 0") != std::string::npos);
}
