// Exported models run in ONNX Runtime (Python, scripts/onnx_run.py) against rdd. The "onnxruntime" suite
// runs in its own CTest entry (deploy_onnxruntime), reported as skipped where ONNX Runtime is not installed.
//
//   - every registered model at widths 0.125 and 0.25, static and dynamic spatial sizes, BatchNorm folded
//     and kept: max |ort − rdd| / max |rdd| ≤ 1e-4 on random and synthetic images (apps/onnx_check.h)
//   - opsets 11, 12, 13 (older Resize inputs) with the upsample and argmax in the graph
//   - the builder's pool and resize forms on sizes the models do not reach (uneven and overlapping bins,
//     fewer rows than bins, dynamic bounds, half-pixel resizing) against rdd's layers
//   - the check fails when the model does not compute what the weights say (a check that cannot fail
//     proves nothing)
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "apps/onnx_check.h"
#include "data/dataset.h"
#include "deploy/onnx_export.h"
#include "deploy/onnx_graph_builder.h"
#include "deploy_fixtures.h"
#include "engine/safetensors.h"
#include "harness.h"
#include "layers/pooling.h"
#include "layers/resize.h"

using namespace rdd;

namespace {

#define ONNXRUNTIME_TEST_CASE(name) TEST_CASE(name * doctest::test_suite("onnxruntime"))

deploy::DeploymentInfo cityscapes_info(const models::SegModel& m) {
  const data::Dataset ds = data::dataset_metadata("cityscapes");
  deploy::DeploymentInfo i;
  i.model = m.name();
  i.width = m.options().width;
  i.num_classes = m.options().num_classes;
  i.dataset = ds.name;
  i.class_names = ds.class_names;
  i.palette = ds.palette;
  i.preset = "cirkd";
  i.norm = data::preset_normalization(data::Preset::cirkd);
  return i;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

// Exports `model` with `o` and runs the check; returns its report.
apps::OnnxCheckReport export_and_check(const models::SegModel& model, const deploy::OnnxExportOptions& o,
                                       const std::string& dir, const std::string& weights, const std::string& tag) {
  const std::string path = dir + "/" + tag + ".onnx";
  write_bytes(path, deploy::export_onnx(model, o, cityscapes_info(model)).bytes);
  apps::OnnxCheckOptions c;
  c.onnx_path = path;
  c.weights = weights;
  c.scenes = 1;
  c.python = test::python();
  return apps::run_onnx_check(c, stdout);
}

}  // namespace

ONNXRUNTIME_TEST_CASE("every model matches rdd in ONNX Runtime within 1e-4 (static/dynamic, BN folded/kept)") {
  const std::string dir = test::temp_dir("ort-models");
  for (const std::string& name : models::model_names())
    for (double width : {0.125, 0.25}) {
      auto model = test::deploy_test_model(name, width, 19, 21);
      const std::string weights = test::save_test_weights(*model, dir + "/w.safetensors");
      for (bool dynamic : {false, true})
        for (bool fold : {true, false}) {
          const std::string tag = name + (dynamic ? "-dynamic" : "-57x75") + (fold ? "-folded" : "-bn");
          INFO(tag << " width " << width);
          deploy::OnnxExportOptions o;
          if (!dynamic) o.height = 57, o.width = 75;  // not multiples of 8: every stride rounds
          o.fold_bn = fold;
          const apps::OnnxCheckReport r = export_and_check(*model, o, dir, weights, tag);
          CHECK(r.passed);
          CHECK(r.worst_rel <= 1e-4);
          CHECK(r.rows.size() == (dynamic ? 4u : 2u));  // random + 1 scene per size; dynamic: 2 sizes
        }
    }
}

ONNXRUNTIME_TEST_CASE("opsets 11, 12 and 13: the upsample to the input and the argmax agree with rdd") {
  const std::string dir = test::temp_dir("ort-opsets");
  auto model = test::deploy_test_model("psp_resnet18", 0.125, 19, 22);
  const std::string weights = test::save_test_weights(*model, dir + "/w.safetensors");
  for (int opset : {11, 12, 13}) {
    INFO("opset " << opset);
    deploy::OnnxExportOptions o;
    o.opset = opset;
    o.resize_to_input = true;
    o.argmax = true;
    const apps::OnnxCheckReport r = export_and_check(*model, o, dir, weights, "psp-" + std::to_string(opset));
    CHECK(r.passed);
    CHECK(r.worst_rel <= 1e-4);
    CHECK(r.worst_agreement >= 0.999);
    CHECK(r.rows.size() == 8u);  // 2 sizes × 2 cases × (logits, labels)
  }
}

ONNXRUNTIME_TEST_CASE("the check fails when the model does not compute what the weights say") {
  const std::string dir = test::temp_dir("ort-mismatch");
  auto model = test::deploy_test_model("deeplabv3_mobilenetv2", 0.125, 19, 23);
  deploy::OnnxExportOptions o;
  o.height = 48, o.width = 64;
  write_bytes(dir + "/m.onnx", deploy::export_onnx(*model, o, cityscapes_info(*model)).bytes);
  auto other = test::deploy_test_model("deeplabv3_mobilenetv2", 0.125, 19, 24);  // same shapes, other values
  apps::OnnxCheckOptions c;
  c.onnx_path = dir + "/m.onnx";
  c.weights = test::save_test_weights(*other, dir + "/other.safetensors");
  c.python = test::python();
  const apps::OnnxCheckReport r = apps::run_onnx_check(c, stdout);
  CHECK(!r.passed);
  CHECK(r.worst_rel > 1e-2);
  CHECK(r.rows.size() == 3u);
  // The command says so with exit code 1; with the right weights, 0.
  CHECK(test::run_rdd({"export", "--check", c.onnx_path, "--weights", c.weights, "--python", test::python()}) == 1);
  const std::string right = test::save_test_weights(*model, dir + "/right.safetensors");
  CHECK(test::run_rdd({"export", "--check", c.onnx_path, "--weights", right, "--python", test::python()}) == 0);
  // rdd's side on --device: the GPU where there is one (the emulated device in an emulated build), else the CPU.
  const std::string device = has_gpu() ? "cuda" : "cpu";
  CHECK(test::run_rdd({"export", "--check", c.onnx_path, "--weights", right, "--python", test::python(), "--device",
                       device}) == 0);
  CHECK(test::run_rdd({"export", "--check", c.onnx_path, "--weights", c.weights, "--python", test::python(),
                       "--device", device}) == 1);
}

ONNXRUNTIME_TEST_CASE("pool and resize forms on sizes the models do not reach equal rdd's layers in ONNX Runtime") {
  // One graph per input size: adaptive pools to assorted bin counts (uneven, overlapping, more bins than rows)
  // and resizes both ways (align_corners and half-pixel), each a graph output.
  const std::string dir = test::temp_dir("ort-forms");
  const struct {
    int64_t h, w;
    bool dynamic;
  } inputs[] = {{7, 11, false}, {13, 5, false}, {7, 11, true}, {2, 3, true}};
  const int bins[][2] = {{1, 1}, {2, 3}, {3, 5}, {6, 6}, {4, 1}, {5, 7}};
  int k = 0;
  for (const auto& in : inputs) {
    INFO(in.h << "x" << in.w << (in.dynamic ? " dynamic" : " static"));
    onnx::ModelProto m;
    m.set_ir_version(onnx::IR_VERSION);
    m.add_opset_import()->set_version(17);
    m.mutable_graph()->set_name("forms");
    deploy::OnnxGraphOptions go;
    if (!in.dynamic) go.height = in.h, go.width = in.w;
    deploy::OnnxGraphBuilder b(*m.mutable_graph(), go);
    const models::GraphValue x = b.add_input("image", 3);
    std::vector<std::string> outputs;
    std::vector<models::GraphValue> pooled;
    for (const auto& bn : bins) {
      const std::string name = "pool" + std::to_string(bn[0]) + "x" + std::to_string(bn[1]);
      pooled.push_back(b.adaptive_avgpool(x, bn[0], bn[1], name));
      b.add_output(pooled.back(), name);
      outputs.push_back(name);
    }
    // Up from 3x5 to the input, both ways; down from the input to 3x5 (half-pixel) when that is not one pixel.
    b.add_output(b.resize_bilinear_to(pooled[2], x, true, "up_ac"), "up_ac");
    b.add_output(b.resize_bilinear_to(pooled[2], x, false, "up_hp"), "up_hp");
    b.add_output(b.resize_bilinear_to(x, pooled[2], false, "down_hp"), "down_hp");
    b.add_output(b.resize_bilinear_to(x, pooled[5], true, "down_ac"), "down_ac");
    outputs.insert(outputs.end(), {"up_ac", "up_hp", "down_hp", "down_ac"});
    const std::string model_path = dir + "/forms" + std::to_string(k) + ".onnx";
    write_bytes(model_path, m.SerializeAsString());

    const Tensor image = test::random_normal({2, 3, in.h, in.w}, uint64_t(100 + k));
    const std::string cases = dir + "/cases" + std::to_string(k) + ".safetensors";
    const std::string results = dir + "/results" + std::to_string(k) + ".safetensors";
    write_safetensors(cases, {{"c.image", image}});
    std::string log;
    REQUIRE_MESSAGE(test::run_command(test::python() + " " + test::source_path("scripts/onnx_run.py") + " " +
                                          model_path + " " + cases + " " + results,
                                      &log) == 0,
                    log);
    const SafetensorsFile got = read_safetensors(results);
    std::map<std::string, Tensor> want;
    std::vector<Tensor> rdd_pooled;
    for (const auto& bn : bins) {
      rdd_pooled.push_back(layers::adaptive_avgpool2d_forward(image, bn[0], bn[1]));
      want["pool" + std::to_string(bn[0]) + "x" + std::to_string(bn[1])] = rdd_pooled.back();
    }
    want["up_ac"] = layers::bilinear_resize_forward(rdd_pooled[2], int(in.h), int(in.w), true);
    want["up_hp"] = layers::bilinear_resize_forward(rdd_pooled[2], int(in.h), int(in.w), false);
    want["down_hp"] = layers::bilinear_resize_forward(image, 3, 5, false);
    want["down_ac"] = layers::bilinear_resize_forward(image, 5, 7, true);
    for (const std::string& o : outputs) {
      INFO(o);
      REQUIRE(got.tensors.count("c." + o) == 1);
      CHECK_TENSORS_CLOSE(got.tensors.at("c." + o), want.at(o), Tolerance{1e-5, 1e-5});
    }
    ++k;
  }
}
