// Model checks for `rdd selftest`: the reference parameter counts and FLOPs of the registered models,
// and (with a GPU) a width-reduced model's forward (eval and train) and backward on the GPU against
// the CPU. The PyTorch comparisons are the golden cases (`rdd selftest --golden`).
#include <cmath>
#include <string>
#include <vector>

#include "apps/cmd_selftest.h"
#include "engine/numeric_check.h"
#include "engine/rng.h"
#include "models/golden.h"
#include "models/seg_model.h"
#include "models/weights_io.h"

namespace rdd::apps {

namespace {
CheckRow exact(const std::string& check, int64_t got, int64_t want) {
  return {"models", check, "cpu", double(std::llabs(got - want)), 0, got == want,
          got == want ? "" : "got " + std::to_string(got) + ", want " + std::to_string(want)};
}

// CPU and GPU copies of one small model with the same weights; returns the rows of the comparison.
std::vector<CheckRow> gpu_vs_cpu(const std::string& name, uint64_t seed) {
  std::vector<CheckRow> rows;
  const std::string dev = device_label(Device::cuda(0));
  models::ModelOptions mo;
  mo.num_classes = 5;
  mo.width = 0.125;
  auto cpu = models::build_model(name, mo), gpu = models::build_model(name, mo);
  cpu->params().materialize(Device::cpu());
  cpu->init_weights(seed);
  gpu->params().materialize(Device::cuda(0));
  models::load_weights(gpu->params(), cpu->params().state_dict());
  Tensor x = Tensor::empty({2, 3, 41, 50});
  fill_uniform(x, -1, 1, seed, 7);
  const Tensor xg = x.to(Device::cuda(0));
  auto row = [&](const std::string& check, const Tensor& g, const Tensor& c, double tol) {
    const double e = models::relative_error(g, c);
    rows.push_back({"models", name + " " + check, dev, e, tol, e <= tol, ""});
  };
  cpu->set_mode(layers::Mode::eval);
  gpu->set_mode(layers::Mode::eval);
  row("eval forward", gpu->forward(xg).main, cpu->forward(x).main, 2e-4);
  cpu->set_mode(layers::Mode::train);
  gpu->set_mode(layers::Mode::train);
  const NetOutputs c = cpu->forward(x), g = gpu->forward(xg);
  row("train forward", g.main, c.main, 2e-4);
  Tensor gm = Tensor::empty(c.main.shape());
  fill_uniform(gm, -1, 1, seed, 8);
  Tensor ga;
  if (c.aux.defined()) {
    ga = Tensor::empty(c.aux.shape());
    fill_uniform(ga, -1, 1, seed, 9);
  }
  cpu->params().zero_grad();
  gpu->params().zero_grad();
  cpu->backward(gm, ga, Tensor());
  gpu->backward(gm.to(Device::cuda(0)), ga.defined() ? ga.to(Device::cuda(0)) : Tensor(), Tensor());
  row("backward (all gradients)", gpu->params().flat_grads(), cpu->params().flat_grads(), 1e-3);
  return rows;
}
}  // namespace

std::vector<CheckRow> selftest_models(const SelftestOptions& o) {
  std::vector<CheckRow> rows;
  const std::pair<const char*, int64_t> counts[] = {{"deeplabv3_resnet101", 61118950},
                                                    {"deeplabv3_resnet18", 13607974},
                                                    {"psp_resnet18", 12919334},
                                                    {"deeplabv3_mobilenetv2", 3233171}};
  for (const auto& [name, want] : counts)
    rows.push_back(exact(std::string(name) + " parameters (19 classes)",
                         models::build_model(name, {})->params().parameter_count(), want));
  // Dilation-correct conv multiply-adds at 512×1024 (2× = 258.75 GFLOP), and the paper's 572.0 G at
  // 1024×2048 from its dilation-blind counter.
  auto r18 = models::build_model("deeplabv3_resnet18", {});
  rows.push_back(exact("deeplabv3_resnet18 MACs at 512x1024", r18->trace({1, 3, 512, 1024}).total_macs(),
                       129373896704));
  rows.push_back(exact("deeplabv3_resnet18 paper MACs at 1024x2048",
                       r18->trace({1, 3, 1024, 2048}).total_paper_macs(), 572014002176));
  if (o.gpu)
    for (const char* name : {"deeplabv3_resnet18", "psp_mobilenetv2"}) {
      std::vector<CheckRow> r = gpu_vs_cpu(name, o.seed);
      rows.insert(rows.end(), r.begin(), r.end());
    }
  return rows;
}

}  // namespace rdd::apps
