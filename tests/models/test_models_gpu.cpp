// Models on the GPU equal the CPU reference: forward (train and eval), backward (every parameter
// gradient), the BN running-statistics update, and dropout (Philox: the same masks on both devices).
#include <cmath>

#include "engine/allocator.h"
#include "engine/rng.h"
#include "harness.h"
#include "models/golden.h"
#include "models/seg_model.h"
#include "models/weights_io.h"

using namespace rdd;
using namespace rdd::models;

namespace {
struct Pair {
  std::unique_ptr<SegModel> cpu, gpu;
};

Pair make_models(const std::string& name, double width, int classes, uint64_t seed) {
  ModelOptions o;
  o.num_classes = classes;
  o.width = width;
  Pair p{build_model(name, o), build_model(name, o)};
  p.cpu->params().materialize(Device::cpu());
  p.cpu->init_weights(seed);
  // Non-trivial BN state, the same on both devices.
  for (Param* b : p.cpu->params().buffers()) {
    if (b->name.find("running_var") != std::string::npos) fill_uniform(b->value, 0.5, 1.5, seed, 1000);
    if (b->name.find("running_mean") != std::string::npos) fill_uniform(b->value, -0.2, 0.2, seed, 1001);
  }
  p.gpu->params().materialize(Device::cuda(0));
  const WeightsReport r = load_weights(p.gpu->params(), p.cpu->params().state_dict());
  REQUIRE(r.complete());
  return p;
}

void check_rel(const std::string& what, const Tensor& gpu, const Tensor& cpu, double tol) {
  INFO(what);
  REQUIRE(gpu.defined() == cpu.defined());
  if (!cpu.defined()) return;
  CHECK(gpu.device().is_cuda());
  const double e = relative_error(gpu, cpu);
  INFO("relative error " << e);
  CHECK(e <= tol);
}
}  // namespace

GPU_TEST_CASE("every model: GPU forward (eval, train) and backward equal the CPU reference") {
  for (const std::string& name : model_names()) {
    INFO(name);
    Pair p = make_models(name, 0.125, 5, 3);
    const Tensor x = test::random_tensor({2, 3, 41, 50}, 7);  // odd sizes: 6×7 at stride 8
    const Tensor xg = x.to(Device::cuda(0));

    // Eval: the frozen teacher path.
    p.cpu->set_mode(layers::Mode::eval);
    p.gpu->set_mode(layers::Mode::eval);
    NetOutputs ec = p.cpu->forward(x), eg = p.gpu->forward(xg);
    check_rel("eval main", eg.main, ec.main, 2e-4);
    check_rel("eval aux", eg.aux, ec.aux, 2e-4);
    check_rel("eval feature", eg.feature, ec.feature, 2e-4);

    // Train, dropout on (same Philox masks on both devices).
    p.cpu->set_mode(layers::Mode::train);
    p.gpu->set_mode(layers::Mode::train);
    p.cpu->set_dropout_seed(9, 4);
    p.gpu->set_dropout_seed(9, 4);
    NetOutputs tc = p.cpu->forward(x), tg = p.gpu->forward(xg);
    check_rel("train main", tg.main, tc.main, 2e-4);
    check_rel("train aux", tg.aux, tc.aux, 2e-4);
    check_rel("train feature", tg.feature, tc.feature, 2e-4);
    const Tensor gm = test::random_tensor(tc.main.shape(), 11);
    const Tensor gf = test::random_tensor(tc.feature.shape(), 12, -0.5, 0.5);
    const Tensor ga = p.cpu->has_aux() ? test::random_tensor(tc.aux.shape(), 13) : Tensor();
    p.cpu->params().zero_grad();
    p.gpu->params().zero_grad();
    p.cpu->backward(gm, ga, gf);
    p.gpu->backward(gm.to(Device::cuda(0)), ga.defined() ? ga.to(Device::cuda(0)) : Tensor(), gf.to(Device::cuda(0)));
    synchronize(Device::cuda(0));
    // Gradients: per parameter, relative to the whole gradient's scale (a structurally zero gradient
    // is f32 noise on both devices).
    const double total = std::sqrt(dot(p.cpu->params().flat_grads(), p.cpu->params().flat_grads()));
    REQUIRE(total > 0);
    for (Param* pc : p.cpu->params().parameters()) {
      const Tensor gg = p.gpu->params().at(pc->name).grad.to(Device::cpu());
      const double own = std::sqrt(dot(pc->grad, pc->grad));
      Tensor diff = gg.clone();
      {
        float* d = diff.data<float>();
        const float* c = pc->grad.data<float>();
        for (int64_t i = 0; i < diff.numel(); ++i) d[i] -= c[i];
      }
      const double err = std::sqrt(dot(diff, diff)) / std::max(own, 1e-3 * total);
      INFO(pc->name << " relative error " << err);
      CHECK(err <= 1e-3);
    }
    for (Param* bc : p.cpu->params().buffers())
      check_rel("buffer " + bc->name, p.gpu->params().at(bc->name).value, bc->value, 1e-4);
  }
}

GPU_TEST_CASE("a full-width DeepLabV3-R18 forward on the GPU matches the CPU at 1×3×65×97") {
  Pair p = make_models("deeplabv3_resnet18", 1.0, 19, 5);
  p.cpu->set_mode(layers::Mode::eval);
  p.gpu->set_mode(layers::Mode::eval);
  const Tensor x = test::random_tensor({1, 3, 65, 97}, 2);
  NetOutputs c = p.cpu->forward(x), g = p.gpu->forward(x.to(Device::cuda(0)));
  check_rel("main", g.main, c.main, 2e-4);
  check_rel("aux", g.aux, c.aux, 2e-4);
  CHECK(g.main.shape() == Shape{1, 19, 9, 13});
}

GPU_TEST_CASE("eval mode keeps no activations; train mode keeps them only until backward") {
  ModelOptions o;
  o.num_classes = 5;
  o.width = 0.25;
  auto m = build_model("deeplabv3_resnet18", o);
  m->params().materialize(Device::cuda(0));
  m->init_weights(1);
  const Tensor x = test::random_tensor({2, 3, 64, 64}, 1).to(Device::cuda(0));
  auto in_use = [] {
    synchronize(Device::cuda(0));
    return cuda_allocator(0).stats().in_use_bytes;
  };
  // Warm-up passes first: workspaces and plans may be allocated once.
  m->set_mode(layers::Mode::eval);
  { NetOutputs warm = m->forward(x); }
  const size_t base = in_use();
  { NetOutputs out = m->forward(x); }
  CHECK(in_use() == base);

  m->set_mode(layers::Mode::train);
  m->set_dropout_enabled(false);
  Tensor gm, ga;
  {
    NetOutputs warm = m->forward(x);
    gm = Tensor::full(warm.main.shape(), 0.5, DType::f32, Device::cuda(0));
    ga = Tensor::full(warm.aux.shape(), 0.25, DType::f32, Device::cuda(0));
    m->backward(gm, ga, Tensor());
  }
  const size_t steady = in_use();
  NetOutputs out = m->forward(x);
  // The cached activations: at least layer1's input (2×32×16×16 floats) besides the outputs.
  CHECK(in_use() > steady + out.main.nbytes() + out.aux.nbytes() + out.feature.nbytes() + 2 * 32 * 16 * 16 * 4);
  m->backward(gm, ga, Tensor());
  out = NetOutputs();
  CHECK(in_use() == steady);
}
