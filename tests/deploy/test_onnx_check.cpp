// rdd's side of `rdd export --check` (apps/onnx_check.h run_rdd_case): the reference outputs are
// SegModel::forward's, finished as the export was (upsampled with align_corners, argmaxed), back on the CPU,
// and the time is the exported graph's; on the GPU (--device cuda) the same outputs as on the CPU.
#include <algorithm>
#include <cmath>

#include "apps/onnx_check.h"
#include "deploy/graph_executor.h"
#include "deploy_fixtures.h"
#include "harness.h"
#include "layers/resize.h"
#include "rdd/segmentation_metrics.h"

using namespace rdd;

namespace {
deploy::DeploymentInfo upsampled_argmax_info(const models::SegModel& m) {
  deploy::DeploymentInfo i;
  i.model = m.name();
  i.width = m.options().width;
  i.num_classes = m.options().num_classes;
  i.resize_to_input = true;
  i.argmax = true;
  return i;
}

double max_rel_diff(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  double d = 0, scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    d = std::max(d, std::fabs(double(got.at<float>(i)) - double(want.at<float>(i))));
    scale = std::max(scale, std::fabs(double(want.at<float>(i))));
  }
  return d / scale;
}

double label_agreement(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  int64_t same = 0;
  for (int64_t i = 0; i < a.numel(); ++i) same += a.data<int32_t>()[i] == b.data<int32_t>()[i];
  return double(same) / double(a.numel());
}
}  // namespace

TEST_CASE("export --check, rdd's side: SegModel::forward upsampled and argmaxed as exported, and a time") {
  auto model = test::deploy_test_model("psp_resnet18", 0.125, 5, 31);
  const deploy::DeploymentInfo info = upsampled_argmax_info(*model);
  const deploy::GraphExecutor graph(*model, /*fold_bn=*/true);
  const Tensor x = test::random_normal({2, 3, 37, 53}, 4);  // (2, 3, 37, 53)
  const apps::RddCaseOutputs r = apps::run_rdd_case(*model, graph, info, x, 2);
  const Tensor want = layers::bilinear_resize_forward(model->forward(x).main, 37, 53, true);  // (2, 5, 37, 53)
  REQUIRE(r.logits.shape() == Shape{2, 5, 37, 53});
  CHECK(max_rel_diff(r.logits, want) == 0.0);
  CHECK(label_agreement(r.labels, argmax_channels(want)) == 1.0);
  CHECK(r.ms > 0);

  deploy::DeploymentInfo plain = info;  // neither upsampled nor argmaxed: the main logits, no labels
  plain.resize_to_input = plain.argmax = false;
  const apps::RddCaseOutputs p = apps::run_rdd_case(*model, graph, plain, x, 1);
  CHECK(p.logits.shape() == Shape{2, 5, 5, 7});
  CHECK(!p.labels.defined());
  CHECK(test::error_message([&] { apps::run_rdd_case(*model, graph, info, x, 0); }).find("--repeat") !=
        std::string::npos);
}

GPU_TEST_CASE("export --check, rdd's side on the GPU (--device cuda): the CPU's outputs, back on the CPU") {
  auto model = test::deploy_test_model("deeplabv3_mobilenetv2", 0.125, 5, 32);
  const deploy::DeploymentInfo info = upsampled_argmax_info(*model);
  const Tensor x = test::random_normal({2, 3, 33, 41}, 5);  // (2, 3, 33, 41) on the CPU
  const deploy::GraphExecutor cpu_graph(*model, /*fold_bn=*/true);
  const apps::RddCaseOutputs want = apps::run_rdd_case(*model, cpu_graph, info, x, 1);
  model->params().materialize(Device::cuda(0), /*with_grads=*/false);  // moves the weights
  const deploy::GraphExecutor gpu_graph(*model, /*fold_bn=*/true);
  const apps::RddCaseOutputs got = apps::run_rdd_case(*model, gpu_graph, info, x, 1);
  REQUIRE(got.logits.device().is_cpu());
  REQUIRE(got.labels.device().is_cpu());
  CHECK(max_rel_diff(got.logits, want.logits) < 1e-5);
  CHECK(label_agreement(got.labels, want.labels) >= 0.999);
  CHECK(got.ms > 0);
}
