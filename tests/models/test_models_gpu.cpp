// Models on the GPU equal the CPU reference: forward (train and eval), backward (every parameter
// gradient), the BN running-statistics update, and dropout (Philox: the same masks on both devices).
#include <cmath>

#include <cstdlib>

#include "engine/allocator.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "harness.h"
#include "models/golden.h"
#include "models/seg_model.h"
#include "models/weights_io.h"

using namespace rdd;
using namespace rdd::models;

namespace {
// The golden cases' folder (tests.cmake generates it; see test_models.cpp), or a fresh one.
std::string golden_dir() {
  if (const char* env = std::getenv("RDD_MODELS_GOLDEN_DIR")) return env;
  static const std::string dir = [] {
    const std::string d = test::temp_dir("models_golden_gpu");
    std::string out;
    const std::string cmd = test::python() + " " + test::source_path("scripts/make_golden_models.py") + " " + d;
    REQUIRE_MESSAGE(test::run_command(cmd, &out) == 0, out);
    return d;
  }();
  return dir;
}

struct Pair {
  std::unique_ptr<SegModel> cpu, gpu;
  std::unique_ptr<SegModel> cpu_nudged;  // the CPU model again, for the f32 sensitivity envelope
};

// The model with the weights of its training-mode golden case (width 1/8): the reference initialisation
// with residual branches started small, as make_golden_models.py explains — at full gain a deep stack of
// training-mode BN blocks has exploding gradients, and two correct f32 implementations (PyTorch's own
// f32 against its f64, or this GPU path against the CPU) land percents apart, which would measure the
// conditioning, not the code.
Pair make_models(const std::string& name, int classes) {
  ModelOptions o;
  o.num_classes = classes;
  o.width = 0.125;
  Pair p{build_model(name, o), build_model(name, o), build_model(name, o)};
  const SafetensorsFile golden = read_safetensors(golden_dir() + "/" + name + "_w0.125_train.safetensors");
  for (SegModel* m : {p.cpu.get(), p.cpu_nudged.get()}) m->params().materialize(Device::cpu());
  p.gpu->params().materialize(Device::cuda(0));
  for (SegModel* m : {p.cpu.get(), p.gpu.get(), p.cpu_nudged.get()})
    REQUIRE(load_weights(m->params(), golden.tensors, true, name, {"golden."}).complete());
  return p;
}

// x with every value moved by about one f32 rounding (one part in 10^7, the sign varying): the size of
// the differences between two correct f32 implementations of every layer (another summation order in a
// BN reduction, say).
Tensor nudged(const Tensor& x) {
  Tensor y = x.clone();
  float* d = y.data<float>();
  for (int64_t i = 0; i < y.numel(); ++i) d[i] *= (i * 2654435761u) >> 31 & 1 ? 1.0000001f : 0.9999999f;
  return y;
}

// |gpu − cpu| within max(tol, 3 × what the CPU itself moves under a nudge of its input): the strict
// limit wherever the computation is well conditioned, and a stated, measured one where it is not.
void check_within_envelope(const std::string& what, double err, double envelope, double tol) {
  const double limit = std::max(tol, 3 * envelope);
  INFO(what << ": relative error " << err << ", the CPU's own f32 envelope " << envelope << ", limit " << limit);
  CHECK(err <= limit);
}

// Relative error of one gradient, against the whole gradient's scale for a structurally zero one.
double grad_error(const Tensor& got, const Tensor& want, double total) {
  Tensor diff = got.to(Device::cpu()).clone();
  float* d = diff.data<float>();
  const float* c = want.data<float>();
  for (int64_t i = 0; i < diff.numel(); ++i) d[i] -= c[i];
  return std::sqrt(dot(diff, diff)) / std::max(std::sqrt(dot(want, want)), 1e-3 * total);
}

void check_rel(const std::string& what, const Tensor& gpu, const Tensor& cpu, double tol, const Tensor& envelope_ref = {}) {
  INFO(what);
  REQUIRE(gpu.defined() == cpu.defined());
  if (!cpu.defined()) return;
  CHECK(gpu.device().is_cuda());
  check_within_envelope(what, relative_error(gpu, cpu), envelope_ref.defined() ? relative_error(envelope_ref, cpu) : 0.0,
                        tol);
}
}  // namespace

// The same golden cases as test_models.cpp, on the GPU: every architecture against PyTorch (float64).
GPU_TEST_CASE("golden cases on the GPU: every architecture, eval and train, equals PyTorch") {
  int cases = 0;
  for (const std::string& name : model_names()) {
    for (const char* mode : {"eval", "train"}) {
      const std::string path = golden_dir() + "/" + name + "_w0.125_" + mode + ".safetensors";
      INFO(path);
      const std::vector<GoldenCheck> checks = run_model_golden(read_safetensors(path), Device::cuda(0), 1e-4, path);
      CHECK(checks.size() >= 2);
      for (const GoldenCheck& c : checks) {
        INFO(c.what << " rel " << c.rel_error << " " << c.detail);
        CHECK(c.pass);
      }
      ++cases;
    }
  }
  CHECK(cases == 14);
}

// Odd sizes the golden cases do not have: 41×50 gives 21×25, 11×13 and 6×7 on the way to stride 8.
GPU_TEST_CASE("every model at odd sizes: GPU forward (eval, train) and backward equal the CPU reference") {
  for (const std::string& name : model_names()) {
    INFO(name);
    Pair p = make_models(name, 5);
    const Tensor x = test::random_tensor({2, 3, 41, 50}, 7);
    const Tensor xg = x.to(Device::cuda(0));

    // Eval: the frozen teacher path.
    p.cpu->set_mode(layers::Mode::eval);
    p.gpu->set_mode(layers::Mode::eval);
    NetOutputs ec = p.cpu->forward(x), eg = p.gpu->forward(xg);
    check_rel("eval main", eg.main, ec.main, 2e-4);
    check_rel("eval aux", eg.aux, ec.aux, 2e-4);
    check_rel("eval feature", eg.feature, ec.feature, 2e-4);

    // Train, dropout on (same Philox masks on both devices).
    for (SegModel* m : {p.cpu.get(), p.gpu.get(), p.cpu_nudged.get()}) {
      m->set_mode(layers::Mode::train);
      m->set_dropout_seed(9, 4);
    }
    NetOutputs tc = p.cpu->forward(x), tg = p.gpu->forward(xg), tn = p.cpu_nudged->forward(nudged(x));
    check_rel("train main", tg.main, tc.main, 2e-4, tn.main);
    check_rel("train aux", tg.aux, tc.aux, 2e-4, tn.aux);
    check_rel("train feature", tg.feature, tc.feature, 2e-4, tn.feature);
    const Tensor gm = test::random_tensor(tc.main.shape(), 11);
    const Tensor gf = test::random_tensor(tc.feature.shape(), 12, -0.5, 0.5);
    const Tensor ga = p.cpu->has_aux() ? test::random_tensor(tc.aux.shape(), 13) : Tensor();
    for (SegModel* m : {p.cpu.get(), p.gpu.get(), p.cpu_nudged.get()}) m->params().zero_grad();
    p.cpu->backward(gm, ga, gf);
    p.cpu_nudged->backward(gm, ga, gf);
    p.gpu->backward(gm.to(Device::cuda(0)), ga.defined() ? ga.to(Device::cuda(0)) : Tensor(), gf.to(Device::cuda(0)));
    synchronize(Device::cuda(0));
    const double total = std::sqrt(dot(p.cpu->params().flat_grads(), p.cpu->params().flat_grads()));
    REQUIRE(total > 0);
    for (Param* pc : p.cpu->params().parameters()) {
      const double err = grad_error(p.gpu->params().at(pc->name).grad, pc->grad, total);
      const double envelope = grad_error(p.cpu_nudged->params().at(pc->name).grad, pc->grad, total);
      check_within_envelope(pc->name, err, envelope, 1e-3);
    }
    for (Param* bc : p.cpu->params().buffers())
      check_rel("buffer " + bc->name, p.gpu->params().at(bc->name).value, bc->value, 1e-4,
                p.cpu_nudged->params().at(bc->name).value);
  }
}

GPU_TEST_CASE("a full-width DeepLabV3-R18 forward on the GPU matches the CPU at 1×3×65×97") {
  ModelOptions o;
  o.num_classes = 19;
  auto cpu = build_model("deeplabv3_resnet18", o), gpu = build_model("deeplabv3_resnet18", o);
  cpu->params().materialize(Device::cpu());
  cpu->init_weights(5);
  gpu->params().materialize(Device::cuda(0));
  REQUIRE(load_weights(gpu->params(), cpu->params().state_dict()).complete());
  cpu->set_mode(layers::Mode::eval);
  gpu->set_mode(layers::Mode::eval);
  const Tensor x = test::random_tensor({1, 3, 65, 97}, 2);
  NetOutputs c = cpu->forward(x), g = gpu->forward(x.to(Device::cuda(0)));
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
