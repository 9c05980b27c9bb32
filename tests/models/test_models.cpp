// The model registry: names and parameter counts against the reference, the dilation pattern, the
// FLOP trace, forward/backward behaviour, weights I/O.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <sstream>

#include "engine/rng.h"
#include "engine/safetensors.h"
#include "harness.h"
#include "models/golden.h"
#include "models/resnet.h"
#include "models/seg_model.h"
#include "models/weights_io.h"

using namespace rdd;
using namespace rdd::models;

namespace {
std::map<std::string, const LayerRow*> rows_by_name(const LayerTable& t) {
  std::map<std::string, const LayerRow*> m;
  for (const LayerRow& r : t.rows) m[r.name] = &r;
  return m;
}

std::unique_ptr<SegModel> small_model(const std::string& name, uint64_t seed, int classes = 3, double width = 0.0625) {
  ModelOptions o;
  o.num_classes = classes;
  o.width = width;
  auto m = build_model(name, o);
  m->params().materialize(Device::cpu());
  m->init_weights(seed);
  return m;
}
}  // namespace

TEST_CASE("parameter counts at 19 classes are the reference's exactly") {
  const std::map<std::string, int64_t> want = {
      {"deeplabv3_resnet101", 61118950}, {"deeplabv3_resnet18", 13607974}, {"psp_resnet18", 12919334},
      {"deeplabv3_mobilenetv2", 3233171}, {"deeplabv3_resnet50", 42126822}, {"psp_resnet101", 68072166},
      {"psp_mobilenetv2", 2654739}};
  CHECK(model_names().size() == want.size());
  for (const std::string& name : model_names()) {
    auto m = build_model(name, {});
    INFO(name);
    REQUIRE(want.count(name) == 1);
    CHECK(m->params().parameter_count() == want.at(name));
    CHECK(m->has_aux() == (name.find("resnet") != std::string::npos));
  }
}

TEST_CASE("state_dict names, shapes and dtypes equal the PyTorch transcription's") {
  for (double width : {1.0, 0.125}) {
    std::string out;
    std::ostringstream cmd;
    cmd << test::python() << " " << test::source_path("scripts/torch_models.py") << " --dump-keys --num-classes 7 --width "
        << width;
    REQUIRE(test::run_command(cmd.str(), &out) == 0);
    std::map<std::string, std::map<std::string, std::string>> torch_keys;  // model → name → "dtype shape"
    std::istringstream is(out);
    std::string model, key, dtype, shape;
    while (is >> model >> key >> dtype >> shape) torch_keys[model][key] = dtype + " " + shape;
    REQUIRE(torch_keys.size() == model_names().size());
    for (const std::string& name : model_names()) {
      ModelOptions o;
      o.num_classes = 7;
      o.width = width;
      auto m = build_model(name, o);
      std::map<std::string, std::string> ours;
      for (const Param& p : m->params().entries()) {
        std::string s;
        for (int64_t d : p.shape) {
          if (!s.empty()) s += ",";
          s += std::to_string(d);
        }
        if (s.empty()) s = "()";
        ours[p.name] = std::string(p.dtype == DType::i64 ? "int64" : "float32") + " " + s;
      }
      INFO(name << " width " << width);
      CHECK(ours.size() == torch_keys[name].size());
      for (const auto& [k, v] : torch_keys[name]) {
        INFO(k);
        REQUIRE(ours.count(k) == 1);
        CHECK(ours[k] == v);
      }
    }
  }
}

TEST_CASE("ResNet-v1s at OS 8: the reference's per-block dilation pattern and strides") {
  auto m = build_model("deeplabv3_resnet18", {});
  const LayerTable t = m->trace({1, 3, 64, 96});
  auto rows = rows_by_name(t);
  auto op = [&](const std::string& n) {
    REQUIRE(rows.count(n) == 1);
    return rows[n]->op;
  };
  CHECK(op("pretrained.conv1") == "conv3x3 s2 3→64 +BN+ReLU");
  CHECK(op("pretrained.conv3") == "conv3x3 s1 64→128 +BN+ReLU");
  CHECK(op("pretrained.layer1.0.downsample.0") == "conv1x1 s1 128→64 +BN");  // stem gives 128 channels
  CHECK(op("pretrained.layer2.0.conv1") == "conv3x3 s2 64→128 +BN+ReLU");
  CHECK(op("pretrained.layer3.0.conv1") == "conv3x3 s1 128→256 +BN+ReLU");     // (1, 2)
  CHECK(op("pretrained.layer3.0.conv2") == "conv3x3 s1 d2 256→256 +BN");
  CHECK(op("pretrained.layer3.1.conv1") == "conv3x3 s1 d2 256→256 +BN+ReLU");  // (2, 2)
  CHECK(op("pretrained.layer4.0.conv1") == "conv3x3 s1 d2 256→512 +BN+ReLU");  // (2, 4)
  CHECK(op("pretrained.layer4.0.conv2") == "conv3x3 s1 d4 512→512 +BN");
  CHECK(op("pretrained.layer4.1.conv1") == "conv3x3 s1 d4 512→512 +BN+ReLU");  // (4, 4)
  CHECK(op("head.aspp.b3.block.0") == "conv3x3 s1 d36 512→128 +BN+ReLU");
  CHECK(op("head.block.4") == "conv1x1 s1 128→19 +bias");
  CHECK(rows["pretrained.layer4.1.conv2"]->output == Shape{1, 512, 8, 12});
  CHECK(rows["auxlayer.block.4"]->output == Shape{1, 19, 8, 12});

  auto r101 = build_model("deeplabv3_resnet101", {});
  const LayerTable t101 = r101->trace({1, 3, 64, 64});
  auto rows101 = rows_by_name(t101);
  CHECK(rows101["pretrained.layer3.0.conv2"]->op == "conv3x3 s1 256→256 +BN+ReLU");  // bottleneck: only the 3×3
  CHECK(rows101["pretrained.layer3.22.conv2"]->op == "conv3x3 s1 d2 256→256 +BN+ReLU");
  CHECK(rows101["pretrained.layer4.0.conv2"]->op == "conv3x3 s1 d2 512→512 +BN+ReLU");
  CHECK(rows101["pretrained.layer4.2.conv2"]->op == "conv3x3 s1 d4 512→512 +BN+ReLU");
  CHECK(rows101["pretrained.layer4.0.downsample.0"]->op == "conv1x1 s1 1024→2048 +BN");

  auto mb = build_model("deeplabv3_mobilenetv2", {});
  const LayerTable tm = mb->trace({1, 3, 64, 64});
  auto rowsm = rows_by_name(tm);
  CHECK(rowsm["pretrained.net.features.4.conv.3"]->op == "conv3x3 s2 dw 144→144 +BN+ReLU6");
  CHECK(rowsm["pretrained.net.features.7.conv.3"]->op == "conv3x3 s1 dw 192→192 +BN+ReLU6");  // stride removed
  CHECK(rowsm["pretrained.net.features.8.conv.3"]->op == "conv3x3 s1 d2 dw 384→384 +BN+ReLU6");
  CHECK(rowsm["pretrained.net.features.14.conv.3"]->op == "conv3x3 s1 d2 dw 576→576 +BN+ReLU6");
  CHECK(rowsm["pretrained.net.features.17.conv.3"]->op == "conv3x3 s1 d4 dw 960→960 +BN+ReLU6");
  CHECK(rowsm["pretrained.net.features.1.conv.0"]->op == "conv3x3 s1 dw 32→32 +BN+ReLU6");  // t = 1
  CHECK(rowsm["pretrained.net.features.17.conv.6"]->output == Shape{1, 320, 8, 8});
}

TEST_CASE("the FLOP trace: multiply-adds equal the PyTorch hook count, parameters the model's") {
  // Conv MACs counted by forward hooks on scripts/torch_models.py (dilation-correct) and by the RDD
  // paper's counter (CIRKD utils/flops.py, dilation ignored), at 1×3×512×1024.
  struct Want {
    const char* name;
    int64_t macs, paper;
  };
  const Want want[] = {{"deeplabv3_resnet101", 515837001728, 687806087168},
                       {"deeplabv3_resnet50", 360681308160, 528759914496},
                       {"deeplabv3_resnet18", 129373896704, 158978342912},
                       {"psp_resnet101", 542772297728, 554328129536},
                       {"psp_resnet18", 122129350656, 131682140160},
                       {"deeplabv3_mobilenetv2", 26635051008, 39209527296},
                       {"psp_mobilenetv2", 21401798656, 21443989504}};
  for (const Want& w : want) {
    auto m = build_model(w.name, {});
    const LayerTable t = m->trace({1, 3, 512, 1024});
    INFO(w.name);
    CHECK(t.total_macs() == w.macs);
    CHECK(t.total_paper_macs() == w.paper);
    CHECK(t.total_params() == m->params().parameter_count());
  }
  // The paper's Table 1 numbers (1024×2048): 572.0 G for DeepLabV3-R18, 2371.7 G for R101.
  CHECK(std::round(build_model("deeplabv3_resnet18", {})->trace({1, 3, 1024, 2048}).total_paper_macs() / 1e8) == 5720);
  CHECK(std::round(build_model("deeplabv3_resnet101", {})->trace({1, 3, 1024, 2048}).total_paper_macs() / 1e8) ==
        23717);
  // Width-reduced, batch 2.
  auto small = build_model("deeplabv3_resnet18", {5, 0.125});
  CHECK(small->trace({2, 3, 40, 48}).total_macs() == 14992928);
}

TEST_CASE("ResNet-v1b (7×7 stem) and OS 16 backbones: names and shapes") {
  ParamStore store;
  ModuleList mods;
  ResNetOptions o;
  o.depth = 50;
  o.deep_stem = false;
  o.output_stride = 16;
  o.prefix = "backbone";
  ResNet r(mods, store, o);
  // torchvision's ResNet-50 without the fc layer.
  CHECK(store.parameter_count() == 25557032 - 2049000);
  CHECK(store.find("backbone.conv1.weight")->shape == Shape{64, 3, 7, 7});
  CHECK(store.find("backbone.conv2.weight") == nullptr);
  LayerTable t;
  auto [c3, c4] = r.trace(t, {1, 3, 224, 224});
  CHECK(c3 == Shape{1, 1024, 14, 14});
  CHECK(c4 == Shape{1, 2048, 14, 14});
  auto rows = rows_by_name(t);
  CHECK(rows["backbone.layer3.0.conv2"]->op == "conv3x3 s2 256→256 +BN+ReLU");
  CHECK(rows["backbone.layer4.0.conv2"]->op == "conv3x3 s1 512→512 +BN+ReLU");  // dilation 2 → first block 1
  CHECK(rows["backbone.layer4.1.conv2"]->op == "conv3x3 s1 d2 512→512 +BN+ReLU");
  ResNetOptions bad;
  bad.depth = 42;
  CHECK_THROWS_WITH_AS(ResNet(mods, store, bad), doctest::Contains("depth 42"), Error);
}

TEST_CASE("unknown model names and bad options are refused by name") {
  CHECK_THROWS_WITH_AS(build_model("deeplabv3_resnet19", {}), doctest::Contains("deeplabv3_resnet19"), Error);
  CHECK_THROWS_WITH_AS(build_model("psp_resnet18", {0, 1.0}), doctest::Contains("num_classes"), Error);
  CHECK_THROWS_WITH_AS(build_model("psp_resnet18", {19, -1.0}), doctest::Contains("width"), Error);
  CHECK(is_model_name("psp_mobilenetv2"));
  CHECK(!is_model_name("fcn"));
}

TEST_CASE("forward: output shapes at stride 8; eval mode refuses backward; initialisation statistics") {
  for (const std::string& name : {std::string("psp_resnet18"), std::string("deeplabv3_mobilenetv2")}) {
    INFO(name);
    auto m = small_model(name, 3);
    const Tensor x = test::random_tensor({2, 3, 33, 47}, 5);
    m->set_mode(layers::Mode::eval);
    NetOutputs o = m->forward(x);
    CHECK(o.main.shape() == Shape{2, 3, 5, 6});
    CHECK(o.feature.shape()[2] == 5);
    CHECK(o.aux.defined() == m->has_aux());
    CHECK_THROWS_WITH_AS(m->backward(o.main, Tensor(), Tensor()), doctest::Contains("eval"), Error);
    // Eval is deterministic and does not touch the running statistics.
    NetOutputs o2 = m->forward(x);
    CHECK(relative_error(o2.main, o.main) == 0.0);
  }
  // Kaiming normal (fan_out) in the backbone: std = sqrt(2 / (64·9)) for layer1 of R18.
  ModelOptions full;
  auto r18 = build_model("deeplabv3_resnet18", full);
  r18->params().materialize(Device::cpu());
  r18->init_weights(11);
  const Tensor w = r18->params().at("pretrained.layer1.1.conv1.weight").value;
  double s2 = 0;
  for (float v : w.to_vector<float>()) s2 += double(v) * v;
  CHECK(std::sqrt(s2 / double(w.numel())) == doctest::Approx(std::sqrt(2.0 / (64 * 9))).epsilon(0.03));
  // Head convs: PyTorch's default U(±1/sqrt(fan_in)).
  const Tensor hw = r18->params().at("head.aspp.b0.0.weight").value;
  double mx = 0;
  for (float v : hw.to_vector<float>()) mx = std::max(mx, double(std::fabs(v)));
  CHECK(mx <= 1.0 / std::sqrt(512.0));
  CHECK(mx > 0.9 / std::sqrt(512.0));
  CHECK(r18->params().at("pretrained.bn1.weight").value.to_vector<float>()[0] == 1.0f);
  CHECK(r18->params().at("pretrained.bn1.running_var").value.to_vector<float>()[5] == 1.0f);
}

// Backward against PyTorch is the golden cases' job (below); finite differences through a deep stack of
// training-mode BN in f32 are too ill-conditioned to say anything. These check the plumbing.
TEST_CASE("backward: gradients accumulate, each output reaches exactly the parameters it depends on") {
  auto m = small_model("deeplabv3_resnet18", 21, 3, 0.125);
  m->set_dropout_enabled(false);
  const Tensor x = test::random_tensor({2, 3, 24, 32}, 8);
  NetOutputs o = m->forward(x);
  const Tensor gm = test::random_tensor(o.main.shape(), 9);
  const Tensor ga = test::random_tensor(o.aux.shape(), 10);
  m->params().zero_grad();
  m->backward(gm, ga, Tensor());
  const Tensor g1 = m->params().flat_grads().clone();
  CHECK_THROWS_WITH_AS(m->backward(gm, ga, Tensor()), doctest::Contains("without a training forward"), Error);
  m->forward(x);
  m->backward(gm, ga, Tensor());  // same forward (BN batch statistics, no dropout): the gradient doubles
  Tensor twice = g1.clone();
  {
    float* p = twice.data<float>();
    for (int64_t i = 0; i < twice.numel(); ++i) p[i] *= 2;
  }
  CHECK(relative_error(m->params().flat_grads(), twice) < 1e-6);

  // The aux logits alone: the head's parameters get nothing, layer4's nothing, layer3 and the aux head do.
  m->params().zero_grad();
  m->forward(x);
  m->backward(Tensor::zeros(o.main.shape()), ga, Tensor());
  auto norm = [&](const std::string& n) { return std::sqrt(dot(m->params().at(n).grad, m->params().at(n).grad)); };
  CHECK(norm("head.block.4.weight") == 0.0);
  CHECK(norm("head.aspp.b0.0.weight") == 0.0);
  CHECK(norm("pretrained.layer4.1.conv2.weight") == 0.0);
  CHECK(norm("pretrained.layer3.1.conv2.weight") > 0.0);
  CHECK(norm("auxlayer.block.4.bias") > 0.0);
  CHECK(norm("pretrained.conv1.weight") > 0.0);

  // The feature gradient alone reaches the head's 3×3 block but not the classifier.
  m->params().zero_grad();
  m->forward(x);
  m->backward(Tensor::zeros(o.main.shape()), Tensor(), test::random_tensor(o.feature.shape(), 3));
  CHECK(norm("head.block.4.weight") == 0.0);
  CHECK(norm("head.block.0.weight") > 0.0);
  CHECK(norm("auxlayer.block.0.weight") == 0.0);

  // Dropout on: a training forward differs from the dropout-free one and changes from step to step.
  m->set_dropout_enabled(true);
  m->set_dropout_seed(5);
  const Tensor d1 = m->forward(x).main.clone();
  const Tensor d2 = m->forward(x).main.clone();
  m->set_dropout_enabled(false);
  const Tensor d0 = m->forward(x).main.clone();
  CHECK(relative_error(d1, d0) > 1e-3);
  CHECK(relative_error(d2, d1) > 1e-3);
}

TEST_CASE("weights I/O: save → load round trip; strict refusals name the tensor; non-strict lists") {
  auto a = small_model("psp_resnet18", 1);
  auto b = small_model("psp_resnet18", 2);
  const std::string dir = test::temp_dir("models_weights");
  const std::string path = dir + "/a.safetensors";
  a->params().at("pretrained.bn1.num_batches_tracked").value.fill_(7);
  save_weights(a->params(), path, {{"model", "psp_resnet18"}});
  SafetensorsFile f = read_safetensors(path);
  CHECK(f.tensors.at("pretrained.bn1.num_batches_tracked").dtype() == DType::i64);
  CHECK(f.metadata.at("model") == "psp_resnet18");

  WeightsReport r = load_weights(b->params(), path);
  CHECK(r.complete());
  CHECK(r.loaded.size() == a->params().entries().size());
  CHECK(relative_error(b->params().flat_values(), a->params().flat_values()) == 0.0);
  CHECK(b->params().at("pretrained.bn1.num_batches_tracked").value.item() == 7);
  a->set_mode(layers::Mode::eval);
  b->set_mode(layers::Mode::eval);
  const Tensor x = test::random_tensor({1, 3, 16, 16}, 4);
  CHECK(relative_error(b->forward(x).main, a->forward(x).main) == 0.0);

  // Missing, unexpected, mismatched.
  std::map<std::string, Tensor> t = f.tensors;
  t.erase("head.classifier.bias");
  t["head.extra.weight"] = test::random_tensor({3}, 1);
  t["pretrained.conv1.weight"] = test::random_tensor({4, 3, 7, 7}, 2);
  auto c = small_model("psp_resnet18", 3);
  const Tensor before = c->params().flat_values().clone();
  CHECK_THROWS_WITH_AS(load_weights(c->params(), t, true, "t.safetensors"), doctest::Contains("head.classifier.bias"),
                       Error);
  CHECK_THROWS_WITH_AS(load_weights(c->params(), t, true, "t.safetensors"), doctest::Contains("head.extra.weight"),
                       Error);
  CHECK_THROWS_WITH_AS(load_weights(c->params(), t, true, "t.safetensors"),
                       doctest::Contains("pretrained.conv1.weight: file f32[4,3,7,7]"), Error);
  CHECK(relative_error(c->params().flat_values(), before) == 0.0);  // a refused load changes nothing
  WeightsReport nr = load_weights(c->params(), t, false, "t.safetensors");
  CHECK(nr.missing == std::vector<std::string>{"head.classifier.bias"});
  CHECK(nr.unexpected == std::vector<std::string>{"head.extra.weight"});
  REQUIRE(nr.mismatched.size() == 1);
  CHECK(nr.loaded.size() == a->params().entries().size() - 2);
  CHECK(relative_error(c->params().at("pretrained.layer1.0.conv1.weight").value,
                       a->params().at("pretrained.layer1.0.conv1.weight").value) == 0.0);
  CHECK(c->params().at("head.classifier.bias").value.to_vector<float>() ==
        before.slice(c->params().at("head.classifier.bias").offset,
                     c->params().at("head.classifier.bias").offset + 3)
            .to_vector<float>());

  // NaN or Inf in a weight is refused at load time, naming the tensor, and changes nothing.
  std::map<std::string, Tensor> diverged = f.tensors;
  Tensor w = diverged.at("head.classifier.weight").clone();
  w.data<float>()[1] = std::numeric_limits<float>::quiet_NaN();
  w.data<float>()[2] = std::numeric_limits<float>::infinity();
  diverged["head.classifier.weight"] = w;
  auto d = small_model("psp_resnet18", 3);
  const Tensor d_before = d->params().flat_values().clone();
  CHECK_THROWS_WITH_AS(load_weights(d->params(), diverged, true, "nan.safetensors"),
                       doctest::Contains("'head.classifier.weight' holds 1 NaN and 1 infinite values"), Error);
  CHECK(relative_error(d->params().flat_values(), d_before) == 0.0);
}

// Golden cases from scripts/make_golden_models.py: every registered architecture, eval and train,
// width 1/8, 2×3×40×48, against PyTorch (float64 reference). tests.cmake generates them into a build
// folder and points RDD_MODELS_GOLDEN_DIR at it; without it the case generates its own.
TEST_CASE("golden cases: every architecture, eval and train, equals PyTorch") {
  std::string dir;
  if (const char* env = std::getenv("RDD_MODELS_GOLDEN_DIR")) {
    dir = env;
  } else {
    dir = test::temp_dir("models_golden");
    std::string out;
    const std::string cmd = test::python() + " " + test::source_path("scripts/make_golden_models.py") + " " + dir;
    REQUIRE_MESSAGE(test::run_command(cmd, &out) == 0, out);
  }
  int cases = 0;
  for (const std::string& name : model_names()) {
    for (const char* mode : {"eval", "train"}) {
      const std::string path = dir + "/" + name + "_w0.125_" + mode + ".safetensors";
      INFO(path);
      SafetensorsFile f = read_safetensors(path);
      const std::vector<GoldenCheck> checks = run_model_golden(f, Device::cpu(), 1e-4, path);
      CHECK(checks.size() >= 2);
      const GoldenCheck* worst = &checks[0];
      for (const GoldenCheck& c : checks)
        if (c.rel_error > worst->rel_error) worst = &c;
      MESSAGE(name << " " << std::string(mode) << ": " << checks.size() << " outputs, worst " << worst->what << " "
                   << worst->rel_error);
      for (const GoldenCheck& c : checks) {
        INFO(c.what << " rel " << c.rel_error << " " << c.detail);
        CHECK(c.pass);
      }
      ++cases;
    }
  }
  CHECK(cases == 14);
}

TEST_CASE("PyTorch checkpoints converted by convert_pth.py load by name (whole model, backbone)") {
  const std::string dir = test::temp_dir("models_convert");
  const std::string make =
      "import sys, torch; sys.path.insert(0, '" + test::source_path("scripts") + "'); import torch_models as tm\n"
      "torch.manual_seed(0); m = tm.build_model('psp_resnet18', 4, 0.125)\n"
      "torch.save({'state_dict': {'module.' + k: v for k, v in m.state_dict().items()}}, '" + dir + "/full.pth')\n"
      "bb = {k[len('pretrained.'):]: v for k, v in m.state_dict().items() if k.startswith('pretrained.')}\n"
      "bb['fc.weight'] = torch.ones(10, 64); torch.save(bb, '" + dir + "/backbone.pth')\n"
      "print(float(m.state_dict()['pretrained.layer2.1.conv1.weight'].sum()))\n";
  {
    FILE* f = std::fopen((dir + "/make.py").c_str(), "w");
    REQUIRE(f);
    std::fputs(make.c_str(), f);
    std::fclose(f);
  }
  std::string out;
  REQUIRE_MESSAGE(test::run_command(test::python() + " " + dir + "/make.py", &out) == 0, out);
  const double torch_sum = std::stod(out);
  const std::string conv = test::python() + " " + test::source_path("scripts/convert_pth.py") + " ";
  REQUIRE_MESSAGE(test::run_command(conv + dir + "/full.pth " + dir + "/full.safetensors --model psp_resnet18 " +
                                        "--width 0.125",
                                    &out) == 0,
                  out);
  REQUIRE_MESSAGE(test::run_command(conv + dir + "/backbone.pth " + dir + "/bb.safetensors --kind backbone " +
                                        "--model psp_resnet18 --num-classes 4 --width 0.125",
                                    &out) == 0,
                  out);
  CHECK(out.find("fc.weight") != std::string::npos);  // the classifier is skipped, and listed

  ModelOptions o;
  o.num_classes = 4;
  o.width = 0.125;
  auto m = build_model("psp_resnet18", o);
  m->params().materialize(Device::cpu());
  WeightsReport r = load_weights(m->params(), dir + "/full.safetensors");  // strict
  CHECK(r.complete());
  double sum = 0;
  for (float v : m->params().at("pretrained.layer2.1.conv1.weight").value.to_vector<float>()) sum += v;
  CHECK(sum == doctest::Approx(torch_sum).epsilon(1e-5));

  auto s = build_model("psp_resnet18", o);
  s->params().materialize(Device::cpu());
  s->init_weights(3);
  CHECK_THROWS_WITH_AS(load_weights(s->params(), dir + "/bb.safetensors"), doctest::Contains("missing"), Error);
  WeightsReport b = load_weights(s->params(), dir + "/bb.safetensors", /*strict=*/false);
  CHECK(b.unexpected.empty());
  CHECK(b.mismatched.empty());
  CHECK(std::find(b.missing.begin(), b.missing.end(), "head.classifier.weight") != b.missing.end());
  CHECK(std::all_of(b.missing.begin(), b.missing.end(),
                    [](const std::string& n) { return n.rfind("pretrained.", 0) != 0; }));
  CHECK(relative_error(s->params().at("pretrained.conv1.weight").value,
                       m->params().at("pretrained.conv1.weight").value) == 0.0);
}

// The backbone variants no registered model uses (7×7 stem, OS 16, depth 34) against the PyTorch
// transcription: c3 and c4 in eval and train mode, and one backward in train mode.
TEST_CASE("ResNet variants (v1b stem, OS 16, depths 34 and 50) equal PyTorch, forward and backward") {
  const std::string dir = test::temp_dir("models_resnet_variants");
  struct Variant {
    int depth;
    bool deep_stem;
    int os;
  };
  const Variant variants[] = {{34, false, 16}, {50, false, 8}, {18, true, 16}};
  for (const Variant& v : variants) {
    const std::string tag = std::to_string(v.depth) + (v.deep_stem ? "s" : "b") + std::to_string(v.os);
    INFO(tag);
    const std::string path = dir + "/" + tag + ".safetensors";
    std::ostringstream py;
    py << "import sys, torch; sys.path.insert(0, '" << test::source_path("scripts") << "')\n"
       << "import torch_models as tm, safetensors_np as st\n"
       << "torch.manual_seed(" << v.depth << ")\n"
       << "m = tm.ResNetV1b(" << v.depth << ", deep_stem=" << (v.deep_stem ? "True" : "False")
       << ", output_stride=" << v.os << ", width=0.125)\n"
       << "with torch.no_grad():\n"
       << "  for mod in m.modules():\n"
       << "    if isinstance(mod, torch.nn.BatchNorm2d):\n"
       << "      mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)\n"
       << "      mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)\n"
       << "t = {'backbone.' + k: (v.numpy() if v.dtype == torch.int64 else v.float().numpy())"
       << " for k, v in m.state_dict().items()}\n"
       << "x = torch.rand(2, 3, 37, 45) * 2 - 1; t['golden.input'] = x.numpy()\n"
       << "md = m.double(); md.eval()\n"
       << "with torch.no_grad(): c3, c4 = md(x.double())\n"
       << "t['golden.eval.c3'] = c3.float().numpy(); t['golden.eval.c4'] = c4.float().numpy()\n"
       << "md.train(); c3, c4 = md(x.double())\n"
       << "g3 = torch.randn(c3.shape).double(); g4 = torch.randn(c4.shape).double()\n"
       << "((c3 * g3).sum() + (c4 * g4).sum()).backward()\n"
       << "t['golden.train.c4'] = c4.detach().float().numpy()\n"
       << "t['golden.g3'] = g3.float().numpy(); t['golden.g4'] = g4.float().numpy()\n"
       << "t['golden.dconv1'] = md.conv1.weight.grad.float().numpy()\n"
       << "t['golden.dlayer3'] = md.layer3[0].conv1.weight.grad.float().numpy()\n"
       << "st.save('" << path << "', t)\n";
    const std::string script = dir + "/" + tag + ".py";
    FILE* f = std::fopen(script.c_str(), "w");
    REQUIRE(f);
    std::fputs(py.str().c_str(), f);
    std::fclose(f);
    std::string out;
    REQUIRE_MESSAGE(test::run_command(test::python() + " " + script, &out) == 0, out);
    const SafetensorsFile g = read_safetensors(path);

    ParamStore store;
    ModuleList mods;
    ResNetOptions o;
    o.depth = v.depth;
    o.deep_stem = v.deep_stem;
    o.output_stride = v.os;
    o.width = 0.125;
    o.prefix = "backbone";
    ResNet r(mods, store, o);
    store.materialize(Device::cpu());
    REQUIRE(load_weights(store, g.tensors, true, path, {"golden."}).complete());
    const Tensor x = g.tensors.at("golden.input");
    mods.set_mode(layers::Mode::eval);
    ResNet::Features fe = r.forward(x);
    CHECK(relative_error(fe.c3, g.tensors.at("golden.eval.c3")) < 1e-5);
    CHECK(relative_error(fe.c4, g.tensors.at("golden.eval.c4")) < 1e-5);
    mods.set_mode(layers::Mode::train);
    ResNet::Features ft = r.forward(x);
    CHECK(relative_error(ft.c4, g.tensors.at("golden.train.c4")) < 1e-4);
    store.zero_grad();
    r.backward(g.tensors.at("golden.g3"), g.tensors.at("golden.g4"));
    CHECK(relative_error(store.at("backbone.conv1.weight").grad, g.tensors.at("golden.dconv1")) < 1e-3);
    CHECK(relative_error(store.at("backbone.layer3.0.conv1.weight").grad, g.tensors.at("golden.dlayer3")) < 1e-3);
  }
}

TEST_CASE("set_stats_reducer reaches every BatchNorm (SyncBN): once per BN in forward and in backward") {
  auto m = small_model("psp_mobilenetv2", 2, 3, 0.125);
  int bns = 0;
  for (const Param& p : m->params().entries())
    if (p.name.size() > 20 && p.name.compare(p.name.size() - 20, 20, ".num_batches_tracked") == 0) ++bns;
  REQUIRE(bns > 10);
  int forward_calls = 0, backward_calls = 0;
  m->set_stats_reducer([&](Tensor& partial) {
    if (partial.size(0) == 3) ++forward_calls;  // [Σx, Σx², count]
    if (partial.size(0) == 2) ++backward_calls;  // [Σdy, Σdy·x̂]
  });
  NetOutputs o = m->forward(test::random_tensor({2, 3, 32, 32}, 1));
  CHECK(forward_calls == bns);
  m->backward(test::random_tensor(o.main.shape(), 2), Tensor(), Tensor());
  CHECK(backward_calls == bns);
  m->set_mode(layers::Mode::eval);  // eval: running statistics, no reduction
  m->forward(test::random_tensor({2, 3, 32, 32}, 3));
  CHECK(forward_calls == bns);
}
