// GraphExecutor: the model's recorded eval graph run on rdd's layers. Unfolded it is SegModel::forward in
// eval mode to the bit (so record() walks the same structure as forward()); with BatchNorm folded into the
// convolutions it differs by f32 rounding only, for every registered model.
#include <algorithm>
#include <cmath>

#include "deploy/graph_executor.h"
#include "deploy_fixtures.h"
#include "harness.h"

using namespace rdd;

namespace {
double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(double(a.at<float>(i)) - double(b.at<float>(i))));
  return m;
}
double max_abs(const Tensor& a) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(double(a.at<float>(i))));
  return m;
}
}  // namespace

TEST_CASE("the recorded graph, run unfolded, is SegModel::forward bit for bit; folded, within f32 rounding") {
  for (const std::string& name : models::model_names()) {
    INFO(name);
    auto model = test::deploy_test_model(name, 0.125, 5, 11);
    const Tensor x = test::random_normal({2, 3, 37, 53}, 3);  // odd sizes: every stride rounds
    const Tensor want = model->forward(x).main;               // (2, 5, 5, 7)
    deploy::GraphExecutor plain(*model, /*fold_bn=*/false);
    CHECK(plain.folded_batchnorms() == 0);
    CHECK(plain.batchnorms() > 0);
    const Tensor got = plain.run(x);
    CHECK(max_abs_diff(got, want) == 0.0);

    deploy::GraphExecutor folded(*model, /*fold_bn=*/true);
    CHECK(folded.folded_batchnorms() == folded.batchnorms());  // every BN of these models follows a conv
    const Tensor f = folded.run(x);
    const double rel = max_abs_diff(f, want) / max_abs(want);
    CHECK(rel < 1e-5);
    CHECK(rel > 0.0);  // folding changes the rounding: the comparison is not vacuous
  }
}

TEST_CASE("GraphExecutor refuses an image of the wrong shape") {
  auto model = test::deploy_test_model("deeplabv3_mobilenetv2", 0.125, 3, 1);
  deploy::GraphExecutor exec(*model, true);
  CHECK(test::error_message([&] { exec.run(test::random_normal({1, 4, 16, 16}, 1)); })
            .find("(N, 3, H, W)") != std::string::npos);
}

GPU_TEST_CASE("GraphExecutor on the GPU: unfolded and folded agree with SegModel::forward there") {
  for (const std::string name : {"psp_resnet18", "deeplabv3_mobilenetv2"}) {
    INFO(name);
    auto model = test::deploy_test_model(name, 0.125, 5, 12);
    model->params().materialize(Device::cuda(0), /*with_grads=*/false);  // moves the weights
    const Tensor x = test::random_normal({2, 3, 37, 53}, 3).to(Device::cuda(0));
    const Tensor want = model->forward(x).main.to(Device::cpu());
    for (bool fold : {false, true}) {
      deploy::GraphExecutor exec(*model, fold);
      const Tensor got = exec.run(x).to(Device::cpu());
      CHECK(max_abs_diff(got, want) / max_abs(want) < 1e-5);
    }
  }
}
