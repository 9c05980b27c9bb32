// scripts/convert_pth.py: PyTorch checkpoints of the reference models (scripts/torch_models.py) and of
// ImageNet backbones in their published layouts become safetensors that rdd loads by name, every tensor
// equal to the original (the originals are also written by name, independently of the converter).
#include <algorithm>
#include <cstdio>
#include <fstream>

#include "engine/safetensors.h"
#include "harness.h"
#include "models/seg_model.h"
#include "models/weights_io.h"

using namespace rdd;

namespace {

// Writes the checkpoints: PyTorch models with random weights and random BN statistics.
//   full.pth      {'epoch', 'state_dict': {'module.' + k: v}} of deeplabv3_resnet18 (width 1/8, 5 classes)
//   full_ref.safetensors  the same state_dict by name (safetensors_np, no converter involved)
//   old.pth       the same state_dict without BN num_batches_tracked (checkpoints before PyTorch 0.4.1)
//   mbv2.pth      {'model': state_dict} of psp_mobilenetv2 (width 1/8, 7 classes), mbv2_ref.safetensors
//   csail.pth     the R18 backbone as CIRKD/CSAIL publish it (conv1..conv3, bn1..bn3) + fc.*
//   seqstem.pth   the same backbone with the stem as one Sequential (conv1.0 ... conv1.6, bn1 = BN(128))
//   tv.pth        a torchvision-layout ResNet-18 (7x7 conv1, 64-channel bn1, no deep stem) + fc.*
//   mbv2_imagenet.pth  the MobileNetV2 backbone as CSAIL publishes it (features.0-18, classifier.1)
const char* kMakeCheckpoints = R"PY(
import sys, torch
out, scripts = sys.argv[1], sys.argv[2]
sys.path.insert(0, scripts)
import torch_models as tm, safetensors_np as st

def randomize(m, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.5, 0.5)
                mod.running_mean.uniform_(-1, 1); mod.running_var.uniform_(0.5, 2)
                mod.num_batches_tracked.fill_(seed * 100 + 7)
    return m.state_dict()

def ref(sd, path):
    st.save(path, {k: v.numpy() for k, v in sd.items()})

sd = randomize(tm.build_model('deeplabv3_resnet18', 5, 0.125), 1)
torch.save({'epoch': 12, 'state_dict': {'module.' + k: v for k, v in sd.items()}}, out + '/full.pth')
ref(sd, out + '/full_ref.safetensors')

torch.save({k: v for k, v in sd.items() if not k.endswith('num_batches_tracked')}, out + '/old.pth')

mb = randomize(tm.build_model('psp_mobilenetv2', 7, 0.125), 2)
torch.save({'model': mb}, out + '/mbv2.pth')
ref(mb, out + '/mbv2_ref.safetensors')

bb = {k[len('pretrained.'):]: v for k, v in sd.items() if k.startswith('pretrained.')}
bb['fc.weight'] = torch.randn(10, 64); bb['fc.bias'] = torch.randn(10)
torch.save(bb, out + '/csail.pth')
stem = {'conv1.weight': 'conv1.0.weight', 'conv2.weight': 'conv1.3.weight', 'conv3.weight': 'conv1.6.weight'}
seq = {}
for k, v in bb.items():
    if k in stem: k = stem[k]
    elif k.startswith('bn1.'): k = 'conv1.1.' + k[4:]
    elif k.startswith('bn2.'): k = 'conv1.4.' + k[4:]
    elif k.startswith('bn3.'): k = 'bn1.' + k[4:]
    seq[k] = v
torch.save(seq, out + '/seqstem.pth')

tv = {k: v for k, v in bb.items() if not k.startswith(('conv', 'bn'))}
tv['conv1.weight'] = torch.randn(8, 3, 7, 7)
for n in ('weight', 'bias', 'running_mean', 'running_var'): tv['bn1.' + n] = torch.rand(8)
tv['bn1.num_batches_tracked'] = torch.tensor(5)
torch.save(tv, out + '/tv.pth')

mbb = {k[len('pretrained.net.'):]: v for k, v in mb.items() if k.startswith('pretrained.net.')}
mbb['features.18.0.weight'] = torch.randn(160, 40, 1, 1)
mbb['classifier.1.weight'] = torch.randn(1000, 160)
torch.save(mbb, out + '/mbv2_imagenet.pth')
open(out + '/garbage.pth', 'w').write('not a checkpoint')
print('ok')
)PY";

struct Converted {
  std::string dir = test::temp_dir("convert_pth");
  Converted() {
    const std::string make = dir + "/make.py";
    {
      std::ofstream f(make);
      f << kMakeCheckpoints;
    }
    std::string out;
    REQUIRE_MESSAGE(test::run_command(test::python() + " " + make + " " + dir + " " + test::source_path("scripts"),
                                      &out) == 0,
                    out);
  }
  // Runs the converter; returns the exit code, `out` gets stdout + stderr.
  int convert(const std::string& args, std::string* out) const {
    return test::run_command(test::python() + " " + test::source_path("scripts/convert_pth.py") + " " + args, out);
  }
  std::string p(const std::string& name) const { return dir + "/" + name; }
};

std::unique_ptr<models::SegModel> make_model(const std::string& name, int classes, uint64_t seed) {
  auto m = models::build_model(name, {classes, 0.125});
  m->params().materialize(Device::cpu());
  m->init_weights(seed);
  return m;
}

// How many entries of the model (all, or those starting with `prefix`) differ from the tensor of the same
// name in `ref` (bit for bit; integer counters compared as values). Names absent from `ref` count.
int64_t count_differences(const models::SegModel& m, const SafetensorsFile& ref, const std::string& prefix = "") {
  int64_t bad = 0, compared = 0;
  for (const auto& [name, got] : m.params().state_dict()) {
    if (name.rfind(prefix, 0) != 0) continue;
    ++compared;
    auto it = ref.tensors.find(name);
    const bool same = it != ref.tensors.end() && got.numel() == it->second.numel() &&
                      got.to_dtype(DType::f64).to_vector<double>() == it->second.to_dtype(DType::f64).to_vector<double>();
    if (!same) MESSAGE("differs: ", name);
    bad += !same;
  }
  REQUIRE(compared > 0);
  return bad;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("convert_pth.py: whole models (module. prefix, state_dict/model wrappers) load strictly, equal") {
  Converted c;
  std::string out;
  // DeepLabV3-R18: num_classes read from the classifier, kind auto → weights.
  REQUIRE_MESSAGE(c.convert(c.p("full.pth") + " " + c.p("full.safetensors") + " --model deeplabv3_resnet18 --width 0.125",
                            &out) == 0,
                  out);
  const SafetensorsFile conv = read_safetensors(c.p("full.safetensors"));
  CHECK(conv.metadata.at("kind") == "weights");
  CHECK(conv.metadata.at("model") == "deeplabv3_resnet18");
  CHECK(conv.metadata.at("num_classes") == "5");
  CHECK(std::stod(conv.metadata.at("width")) == 0.125);
  auto m = make_model("deeplabv3_resnet18", 5, 3);
  const models::WeightsReport r = models::load_weights(m->params(), c.p("full.safetensors"));  // strict
  CHECK(r.complete());
  CHECK(r.loaded.size() == m->params().entries().size());
  const SafetensorsFile ref = read_safetensors(c.p("full_ref.safetensors"));
  CHECK(count_differences(*m, ref) == 0);
  CHECK(m->params().at("head.block.0.weight").value.dtype() == DType::f32);

  // PSPNet-MobileNetV2 wrapped in {"model": ...}, without a prefix.
  REQUIRE_MESSAGE(c.convert(c.p("mbv2.pth") + " " + c.p("mbv2.safetensors") + " --model psp_mobilenetv2 --width 0.125 "
                                "--kind teacher --num-classes 7",
                            &out) == 0,
                  out);
  auto mb = make_model("psp_mobilenetv2", 7, 3);
  CHECK(models::load_weights(mb->params(), c.p("mbv2.safetensors")).complete());
  CHECK(count_differences(*mb, read_safetensors(c.p("mbv2_ref.safetensors"))) == 0);

  // A checkpoint from before PyTorch 0.4.1 (no num_batches_tracked): counters filled with 0, said so.
  REQUIRE_MESSAGE(c.convert(c.p("old.pth") + " " + c.p("old.safetensors") + " --model deeplabv3_resnet18 --width 0.125",
                            &out) == 0,
                  out);
  CHECK(out.find("filled 31 BatchNorm num_batches_tracked counters") != std::string::npos);
  auto old = make_model("deeplabv3_resnet18", 5, 3);
  CHECK(models::load_weights(old->params(), c.p("old.safetensors")).complete());
  CHECK(old->params().at("pretrained.bn1.num_batches_tracked").value.item() == 0);
  CHECK(old->params().at("pretrained.bn1.running_var").value.to_vector<float>() ==
        ref.tensors.at("pretrained.bn1.running_var").to_vector<float>());

  // The wrong model, class count or file is refused with the reason.
  CHECK(c.convert(c.p("full.pth") + " " + c.p("x.safetensors") + " --model psp_resnet18 --width 0.125", &out) == 1);
  CHECK(out.find("missing") != std::string::npos);
  CHECK(out.find("head.classifier.weight") != std::string::npos);
  CHECK(c.convert(c.p("full.pth") + " " + c.p("x.safetensors") + " --model deeplabv3_resnet18 --width 0.125 "
                      "--num-classes 19",
                  &out) == 1);
  CHECK(out.find("head.block.4.weight: file (5,16,1,1), deeplabv3_resnet18 (19,16,1,1)") != std::string::npos);
  CHECK(c.convert(c.p("nope.pth") + " " + c.p("x.safetensors") + " --model deeplabv3_resnet18", &out) == 1);
  CHECK(out.find(c.p("nope.pth") + ": no such file") != std::string::npos);
  CHECK(c.convert(c.p("garbage.pth") + " " + c.p("x.safetensors") + " --model deeplabv3_resnet18", &out) == 1);
  CHECK(out.find(c.p("garbage.pth") + ": cannot be read by torch.load") != std::string::npos);
  CHECK(c.convert(c.p("full.pth") + " " + c.p("x.safetensors") + " --model deeplabv3_resnet19", &out) != 0);
  CHECK(out.find("unknown model") != std::string::npos);
}

TEST_CASE("convert_pth.py: ImageNet backbones (CSAIL, Sequential stem, torchvision, MobileNetV2) → pretrained.*") {
  Converted c;
  std::string out;
  const SafetensorsFile ref = read_safetensors(c.p("full_ref.safetensors"));
  const std::string r18 = " --model deeplabv3_resnet18 --width 0.125";

  // CIRKD/CSAIL resnet18-imagenet.pth layout: everything but fc.* → pretrained.*, fc listed as skipped.
  REQUIRE_MESSAGE(c.convert(c.p("csail.pth") + " " + c.p("csail.safetensors") + r18, &out) == 0, out);
  CHECK(out.find("fc.weight") != std::string::npos);
  CHECK(out.find("fc.bias") != std::string::npos);
  const SafetensorsFile bb = read_safetensors(c.p("csail.safetensors"));
  CHECK(bb.metadata.at("kind") == "backbone");
  CHECK(bb.metadata.at("model") == "deeplabv3_resnet18");
  auto m = make_model("deeplabv3_resnet18", 19, 4);
  CHECK_THROWS_WITH_AS(models::load_weights(m->params(), c.p("csail.safetensors")), doctest::Contains("missing"), Error);
  const models::WeightsReport r = models::load_weights(m->params(), c.p("csail.safetensors"), /*strict=*/false);
  CHECK(r.unexpected.empty());
  CHECK(r.mismatched.empty());
  CHECK(has(r.missing, "head.block.4.weight"));
  CHECK(std::none_of(r.missing.begin(), r.missing.end(), [](const std::string& n) { return n.rfind("pretrained.", 0) == 0; }));
  CHECK(count_differences(*m, ref, "pretrained.") == 0);

  // The stem as one Sequential: renamed to conv1/bn1/conv2/bn2/conv3/bn3, the same file content.
  REQUIRE_MESSAGE(c.convert(c.p("seqstem.pth") + " " + c.p("seq.safetensors") + r18 + " --kind backbone", &out) == 0,
                  out);
  CHECK(out.find("Sequential") != std::string::npos);
  const SafetensorsFile seq = read_safetensors(c.p("seq.safetensors"));
  REQUIRE(seq.tensors.size() == bb.tensors.size());
  for (const auto& [name, t] : bb.tensors) {
    REQUIRE_MESSAGE(seq.tensors.count(name), name);
    CHECK_MESSAGE(seq.tensors.at(name).to_dtype(DType::f64).to_vector<double>() ==
                      t.to_dtype(DType::f64).to_vector<double>(),
                  name);
  }

  // torchvision layout: the 7x7 stem does not fit the deep stem; it is skipped and said so.
  REQUIRE_MESSAGE(c.convert(c.p("tv.pth") + " " + c.p("tv.safetensors") + r18, &out) == 0, out);
  CHECK(out.find("7x7") != std::string::npos);
  CHECK(out.find("conv1.weight: file (8,3,7,7), deeplabv3_resnet18 (8,3,3,3)") != std::string::npos);
  CHECK(out.find("pretrained.conv2.weight") != std::string::npos);  // listed as not in the file
  auto t = make_model("deeplabv3_resnet18", 19, 4);
  const models::WeightsReport tr = models::load_weights(t->params(), c.p("tv.safetensors"), false);
  CHECK(tr.unexpected.empty());
  CHECK(tr.mismatched.empty());
  CHECK(has(tr.loaded, "pretrained.layer4.1.conv2.weight"));
  CHECK(has(tr.missing, "pretrained.conv1.weight"));

  // MobileNetV2: pretrained.net.features.*, the last 1x1 conv (features.18) and the classifier skipped.
  REQUIRE_MESSAGE(c.convert(c.p("mbv2_imagenet.pth") + " " + c.p("mbb.safetensors") +
                                " --model deeplabv3_mobilenetv2 --width 0.125",
                            &out) == 0,
                  out);
  CHECK(out.find("features.18.0.weight") != std::string::npos);
  CHECK(out.find("classifier.1.weight") != std::string::npos);
  auto mb = make_model("deeplabv3_mobilenetv2", 19, 4);
  const models::WeightsReport mr = models::load_weights(mb->params(), c.p("mbb.safetensors"), false);
  CHECK(mr.unexpected.empty());
  CHECK(mr.mismatched.empty());
  CHECK(std::none_of(mr.missing.begin(), mr.missing.end(), [](const std::string& n) { return n.rfind("pretrained.", 0) == 0; }));
  CHECK(count_differences(*mb, read_safetensors(c.p("mbv2_ref.safetensors")), "pretrained.") == 0);

  // A backbone that fits nothing of the model.
  CHECK(c.convert(c.p("mbv2_imagenet.pth") + " " + c.p("x.safetensors") + r18, &out) == 1);
  CHECK(out.find("no tensor fits") != std::string::npos);
}
