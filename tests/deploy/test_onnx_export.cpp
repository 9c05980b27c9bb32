// export_onnx without running the graph: every registered model (widths 0.125 and 0.25, static and dynamic
// sizes, BN folded or kept) passes the ONNX checker when read back, has the nodes and shapes it should, and
// carries the deployment metadata; the PSP pools take the forms their sizes allow; what ONNX cannot express
// exactly is refused by name. (ONNX Runtime runs them in test_onnxruntime.cpp.)
#include <onnx/onnx_pb.h>

#include <algorithm>

#include "data/augment.h"
#include "data/dataset.h"
#include "deploy/onnx_export.h"
#include "deploy/onnx_file.h"
#include "deploy/onnx_graph_builder.h"
#include "deploy_fixtures.h"
#include "harness.h"

using namespace rdd;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Convolutions and BatchNorms of the exported part (everything but the training-only aux head).
std::pair<int, int> convs_and_bns(const models::SegModel& m) {
  int convs = 0, bns = 0;
  for (const Param& p : m.params().entries()) {
    if (p.name.rfind("auxlayer.", 0) == 0) continue;
    if (ends_with(p.name, ".running_mean")) ++bns;
    if (ends_with(p.name, ".weight") && p.shape.size() == 4) ++convs;
  }
  return {convs, bns};
}

deploy::DeploymentInfo info_for(const models::SegModel& m) {
  const data::Dataset ds = data::dataset_metadata("cityscapes");
  deploy::DeploymentInfo i;
  i.model = m.name();
  i.width = m.options().width;
  i.num_classes = m.options().num_classes;
  i.dataset = ds.name;
  i.class_names = ds.class_names;
  i.palette = ds.palette;
  i.preset = "mmseg";
  i.norm = data::preset_normalization(data::Preset::mmseg);
  i.weights = "w.safetensors";
  return i;
}

int count(const deploy::OnnxFileInfo& f, const std::string& op) {
  auto it = f.op_counts.find(op);
  return it == f.op_counts.end() ? 0 : it->second;
}

}  // namespace

TEST_CASE("every model exports (static and dynamic, BN folded and kept), the checker accepts it read back") {
  for (const std::string& name : models::model_names())
    for (double width : {0.125, 0.25}) {
      auto model = test::deploy_test_model(name, width, 19, 3);
      const auto [convs, bns] = convs_and_bns(*model);
      const Tensor logits = model->forward(test::random_normal({1, 3, 64, 80}, 1)).main;  // (1, 19, 8, 10)
      for (bool dynamic : {false, true})
        for (bool fold : {true, false}) {
          INFO(name << " width " << width << (dynamic ? " dynamic" : " 64x80") << (fold ? " folded" : " kept"));
          deploy::OnnxExportOptions o;
          if (!dynamic) o.height = 64, o.width = 80;
          o.fold_bn = fold;
          const deploy::OnnxExport e = deploy::export_onnx(*model, o, info_for(*model));
          const deploy::OnnxFileInfo f = deploy::parse_onnx_model(e.bytes, name);  // runs the checker again
          CHECK(f.opset == 17);
          CHECK(count(f, "Conv") == convs);
          CHECK(e.batchnorms == bns);
          CHECK(count(f, "BatchNormalization") == (fold ? 0 : bns));
          CHECK(e.folded_batchnorms == (fold ? bns : 0));
          CHECK(f.op_counts.count("Dropout") == 0);
          REQUIRE(f.inputs.size() == 1);
          REQUIRE(f.outputs.size() == 1);
          CHECK(f.inputs[0].name == "image");
          CHECK(f.outputs[0].name == "logits");
          CHECK(f.outputs[0].elem_type == "float32");
          if (dynamic) {
            CHECK(f.inputs[0].dims == std::vector<std::string>{"batch", "3", "height", "width"});
            CHECK(f.outputs[0].dims[1] == "19");
          } else {
            CHECK(f.inputs[0].dims == std::vector<std::string>{"batch", "3", "64", "80"});
            CHECK(f.outputs[0].dims == std::vector<std::string>{"batch", "19", std::to_string(logits.size(2)),
                                                                 std::to_string(logits.size(3))});
          }
          // No aux head in the graph: no initializer or node named after it.
          CHECK(e.bytes.find("auxlayer") == std::string::npos);
        }
    }
}

TEST_CASE("the metadata says how to feed the model and reads back") {
  auto model = test::deploy_test_model("deeplabv3_resnet18", 0.125, 19, 1);
  deploy::OnnxExportOptions o;
  o.height = 40, o.width = 56;
  o.argmax = true;
  o.resize_to_input = true;
  const deploy::OnnxExport e = deploy::export_onnx(*model, o, info_for(*model));
  const deploy::OnnxFileInfo f = deploy::parse_onnx_model(e.bytes, "r18");
  for (const char* key : {"model", "width", "num_classes", "dataset", "class_names", "palette", "input", "input_size",
                          "channel_order", "mean", "std", "normalization", "preset", "outputs", "logits_stride",
                          "fold_bn", "argmax", "resize_to_input", "opset", "adaptive_pools", "requires", "weights",
                          "producer"})
    CHECK_MESSAGE(f.metadata.count(key) == 1, key);
  CHECK(f.metadata.at("channel_order") == "RGB");
  CHECK(f.metadata.at("mean") == "[123.675003, 116.279999, 103.529999]");
  CHECK(f.metadata.at("std") == "[58.3950005, 57.1199989, 57.375]");
  CHECK(f.metadata.at("input_size") == "40x56");
  CHECK(f.metadata.at("logits_stride") == "1");
  CHECK(f.metadata.at("class_names").rfind("[\"road\",\"sidewalk\",", 0) == 0);
  CHECK(f.metadata.at("palette").rfind("[[128,64,128],[244,35,232],", 0) == 0);
  CHECK(f.producer == std::string("rdd ") + RDD_VERSION);
  const deploy::DeploymentInfo back = deploy::parse_deployment_metadata(f.metadata, "r18");
  CHECK(back.model == "deeplabv3_resnet18");
  CHECK(back.width == 0.125);
  CHECK(back.num_classes == 19);
  CHECK(back.class_names.size() == 19);
  CHECK(back.palette.size() == 19);
  CHECK(!back.norm.bgr);
  CHECK(back.norm.mean[0] == 123.675f);
  CHECK(back.norm.stdev[2] == 57.375f);
  CHECK(back.height == 40);
  CHECK(back.width_px == 56);
  CHECK(back.argmax);
  CHECK(back.resize_to_input);
  CHECK(back.fold_bn);
  // Outputs: logits at the input size, labels int64.
  REQUIRE(f.outputs.size() == 2);
  CHECK(f.outputs[0].dims == std::vector<std::string>{"batch", "19", "40", "56"});
  CHECK(f.outputs[1].name == "labels");
  CHECK(f.outputs[1].elem_type == "int64");
  CHECK(f.outputs[1].dims == std::vector<std::string>{"batch", "40", "56"});
  CHECK(count(f, "ArgMax") == 1);

  SUBCASE("a model without rdd's metadata is refused naming the key") {
    std::map<std::string, std::string> partial = f.metadata;
    partial.erase("channel_order");
    CHECK(test::error_message([&] { deploy::parse_deployment_metadata(partial, "m.onnx"); })
              .find("m.onnx: no 'channel_order' in the model's metadata_props") != std::string::npos);
    partial = f.metadata;
    partial["mean"] = "[1, 2]";
    CHECK(test::error_message([&] { deploy::parse_deployment_metadata(partial, "m.onnx"); })
              .find("metadata 'mean' is '[1, 2]', not an array of 3 numbers") != std::string::npos);
  }
}

TEST_CASE("PSP pools: GlobalAveragePool, AveragePool where the bins divide the map, Slice+ReduceMean where not") {
  auto model = test::deploy_test_model("psp_resnet18", 0.125, 19, 2);
  auto notes_of = [&](int64_t h, int64_t w) {
    deploy::OnnxExportOptions o;
    o.height = h, o.width = w;
    return deploy::export_onnx(*model, o, info_for(*model));
  };
  // 48x48 → a 6x6 map: bins 1, 2, 3, 6 all divide it.
  const deploy::OnnxExport even = notes_of(48, 48);
  const deploy::OnnxFileInfo fe = deploy::parse_onnx_model(even.bytes, "psp48");
  CHECK(count(fe, "GlobalAveragePool") == 1);
  CHECK(count(fe, "AveragePool") == 3);
  CHECK(count(fe, "ReduceMean") == 0);
  CHECK(std::find(even.notes.begin(), even.notes.end(),
                  "head.psp.avgpool4 6x6→6x6: AveragePool, kernel = stride = 1x1") != even.notes.end());
  // 64x80 → 8x10: bin 2 divides (AveragePool 4x5); 3 and 6 do not (3 + 3 + 6 + 6 Slice+ReduceMean).
  const deploy::OnnxExport odd = notes_of(64, 80);
  const deploy::OnnxFileInfo fo = deploy::parse_onnx_model(odd.bytes, "psp64x80");
  CHECK(count(fo, "AveragePool") == 1);
  CHECK(count(fo, "ReduceMean") == 18);
  CHECK(count(fo, "Slice") >= 18);  // and the ones that read the batch size for Resize
  CHECK(std::find(odd.notes.begin(), odd.notes.end(),
                  "head.psp.avgpool3 8x10→3x3: rows 8→3 as Slice+ReduceMean over bins [0,3) [2,6) [5,8); columns "
                  "10→3 as Slice+ReduceMean over bins [0,4) [3,7) [6,10)") != odd.notes.end());
  CHECK(odd.requirements.empty());
  // Dynamic: the bin bounds come from the shape; each resize to a dynamic size is a stated requirement.
  deploy::OnnxExportOptions d;
  const deploy::OnnxExport dyn = deploy::export_onnx(*model, d, info_for(*model));
  const deploy::OnnxFileInfo fd = deploy::parse_onnx_model(dyn.bytes, "psp-dynamic");
  CHECK(count(fd, "ReduceMean") == 2 * (2 + 3 + 6));  // per bin, per axis (bin 1 is GlobalAveragePool)
  CHECK(count(fd, "Div") > 0);
  CHECK(dyn.requirements.size() == 3);  // the 2x2, 3x3, 6x6 maps upsampled to the feature map
  CHECK(fd.metadata.at("requires").find("head.psp.conv2.upsample (Resize, align_corners) resizes 2x2") !=
        std::string::npos);
}

TEST_CASE("DeepLabV3's image pooling branch: GlobalAveragePool, then Expand (bilinear from 1x1 copies the value)") {
  auto model = test::deploy_test_model("deeplabv3_mobilenetv2", 0.25, 19, 4);
  for (bool dynamic : {false, true}) {
    deploy::OnnxExportOptions o;
    if (!dynamic) o.height = 33, o.width = 65;
    const deploy::OnnxExport e = deploy::export_onnx(*model, o, info_for(*model));
    const deploy::OnnxFileInfo f = deploy::parse_onnx_model(e.bytes, "dlv3");
    CHECK(count(f, "GlobalAveragePool") == 1);
    CHECK(count(f, "Expand") == 1);
    CHECK(count(f, "Resize") == 0);
    CHECK(e.requirements.empty());
  }
}

TEST_CASE("opset: 11 to the library's newest; older Resize gets empty roi/scales inputs") {
  CHECK(deploy::max_onnx_opset() >= 17);
  auto model = test::deploy_test_model("psp_mobilenetv2", 0.125, 19, 5);
  for (int opset : {11, 12, 13, deploy::max_onnx_opset()}) {
    deploy::OnnxExportOptions o;
    o.opset = opset;
    o.resize_to_input = true;
    const deploy::OnnxFileInfo f =
        deploy::parse_onnx_model(deploy::export_onnx(*model, o, info_for(*model)).bytes, "psp");
    CHECK(f.opset == opset);
    CHECK(count(f, "Resize") == 4);
  }
  for (int opset : {10, deploy::max_onnx_opset() + 1}) {
    deploy::OnnxExportOptions o;
    o.opset = opset;
    const std::string msg = test::error_message([&] { deploy::export_onnx(*model, o, info_for(*model)); });
    CHECK(msg.find("--opset " + std::to_string(opset) + ": rdd exports opsets 11 to") != std::string::npos);
  }
}

TEST_CASE("what ONNX cannot compute as rdd does is refused, naming the op and the sizes") {
  SUBCASE("a PSP bin upsampled to a one-row map (align_corners divides by zero in ONNX)") {
    auto model = test::deploy_test_model("psp_resnet18", 0.125, 19, 6);
    deploy::OnnxExportOptions o;
    o.height = 8, o.width = 64;  // → a 1x8 feature map
    const std::string msg = test::error_message([&] { deploy::export_onnx(*model, o, info_for(*model)); });
    CHECK(msg.find("onnx export: head.psp.conv2.upsample resizes 2x2 to 1x8: to one row with align_corners") !=
          std::string::npos);
    CHECK(msg.find("use a larger --input") != std::string::npos);
  }
  SUBCASE("the same input with a DeepLabV3 head is fine (1x1 pooling → Expand), up to the final upsample") {
    auto model = test::deploy_test_model("deeplabv3_resnet18", 0.125, 19, 6);
    deploy::OnnxExportOptions o;
    o.height = 8, o.width = 64;
    CHECK(test::error_message([&] { deploy::export_onnx(*model, o, info_for(*model)); }).empty());
    o.height = 1;  // the logits upsampled to one row
    o.resize_to_input = true;
    CHECK(test::error_message([&] { deploy::export_onnx(*model, o, info_for(*model)); })
              .find("upsample_to_input resizes 1x8 to 1x64: to one row") != std::string::npos);
  }
  SUBCASE("builder ops the models do not use today: ceil_mode max pool, half-pixel resize to one pixel") {
    onnx::GraphProto g;
    deploy::OnnxGraphOptions go;
    go.height = 9, go.width = 12;
    deploy::OnnxGraphBuilder b(g, go);
    const models::GraphValue x = b.add_input("image", 3);
    CHECK(test::error_message([&] { b.maxpool(x, {3, 2, 1, true}, "pool"); })
              .find("pool: a ceil_mode MaxPool is not exported") != std::string::npos);
    const models::GraphValue tiny = b.adaptive_avgpool(x, 1, 4, "tiny");  // (batch, 3, 1, 4)
    CHECK(test::error_message([&] { b.resize_bilinear_to(x, tiny, false, "down"); })
              .find("down resizes 9x12 to 1x4: to one row with half-pixel centres") != std::string::npos);
  }
  SUBCASE("weights over protobuf's 2 GiB (checked before anything is allocated)") {
    auto huge = models::build_model("psp_resnet101", {19, 4.0});  // ~1.1e9 parameters, not materialized
    CHECK(test::error_message([&] { deploy::export_onnx(*huge, {}, info_for(*huge)); })
              .find("MiB of weights; one .onnx file holds under 2 GiB (protobuf's limit)") != std::string::npos);
  }
  SUBCASE("an input size half static, half dynamic") {
    auto model = test::deploy_test_model("deeplabv3_resnet18", 0.125, 19, 6);
    CHECK(test::error_message([&] {
            onnx::GraphProto g;
            deploy::OnnxGraphOptions go;
            go.height = 64, go.width = -1;
            deploy::OnnxGraphBuilder b(g, go);
          }).find("input size 64x-1 (both positive, or both −1 for a dynamic size)") != std::string::npos);
  }
}
