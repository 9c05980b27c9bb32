// `rdd export` run in-process through the same command table as the binary: it writes a model the checker
// accepts and says what it wrote; bad input is refused with a message naming the flag or file and the
// problem — an unknown model, weights of another architecture, a missing or contradictory size, an opset
// or size ONNX cannot serve exactly, an output that cannot be written, --check on something that is not an
// exported model.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "apps/commands.h"
#include "deploy/onnx_file.h"
#include "deploy_fixtures.h"
#include "harness.h"

using namespace rdd;

namespace {

namespace fs = std::filesystem;

using test::run_rdd;

// What rdd says when it refuses a command line: a flag's own check (the shared flags of apps/flags.h, CLI11's
// parse errors) or an rdd::Error from the command.
std::string refusal(const std::vector<std::string>& args) {
  try {
    return test::error_message([&] { run_rdd(args); });
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
}

struct Fixture {
  std::string dir = test::temp_dir("export-cli");
  std::unique_ptr<models::SegModel> r18 = test::deploy_test_model("deeplabv3_resnet18", 0.125, 19, 7);
  std::string weights = test::save_test_weights(*r18, dir + "/r18.safetensors");
  std::string out = dir + "/r18.onnx";
  std::vector<std::string> base() const {
    return {"export", "--model", "deeplabv3_resnet18", "--width", "0.125", "--weights", weights};
  }
  std::vector<std::string> with(std::vector<std::string> more) const {
    std::vector<std::string> a = base();
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
};

}  // namespace

TEST_CASE("rdd export writes a checked model with its metadata, atomically") {
  Fixture f;
  REQUIRE(run_rdd(f.with({"--out", f.out, "--input", "64x96", "--argmax", "--resize-to-input"})) == 0);
  const deploy::OnnxFileInfo info = deploy::read_onnx_file(f.out);
  CHECK(info.metadata.at("model") == "deeplabv3_resnet18");
  CHECK(info.metadata.at("width") == "0.125");
  CHECK(info.metadata.at("weights") == "r18.safetensors");
  CHECK(info.metadata.at("input_size") == "64x96");
  CHECK(info.metadata.at("channel_order") == "BGR");  // --preset cirkd, the default
  CHECK(info.outputs.size() == 2);
  CHECK(info.op_counts.count("BatchNormalization") == 0);  // folded by default
  for (const auto& e : fs::directory_iterator(f.dir))  // no temporary file left behind
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);

  REQUIRE(run_rdd(f.with({"--out", f.out, "--dynamic", "--no-fold-bn", "--preset", "mmseg", "--opset", "13"})) == 0);
  const deploy::OnnxFileInfo dyn = deploy::read_onnx_file(f.out);  // replaced in place
  CHECK(dyn.metadata.at("input_size") == "dynamic");
  CHECK(dyn.metadata.at("channel_order") == "RGB");
  CHECK(dyn.opset == 13);
  CHECK(dyn.op_counts.at("BatchNormalization") > 0);
}

TEST_CASE("rdd export without --model and --width: the weights' metadata says what they are") {
  Fixture f;
  REQUIRE(run_rdd({"export", "--weights", f.weights, "--out", f.out, "--dynamic"}) == 0);
  const deploy::OnnxFileInfo info = deploy::read_onnx_file(f.out);
  CHECK(info.metadata.at("model") == "deeplabv3_resnet18");
  CHECK(info.metadata.at("width") == "0.125");
}

TEST_CASE("rdd export refuses bad input naming the flag or the file") {
  Fixture f;
  const std::vector<std::string> out{"--out", f.out, "--input", "64x96"};
  CHECK(refusal({"export", "--model", "deeplabv3_resnet19", "--weights", f.weights, "--out", f.out, "--dynamic"})
            .find("--model: unknown model 'deeplabv3_resnet19' (known: deeplabv3_resnet101,") != std::string::npos);
  // A weights file that does not record its model needs --model (one that does: the next test case).
  auto unnamed = test::deploy_test_model("deeplabv3_resnet18", 0.125, 19, 9);
  const std::string unnamed_weights = f.dir + "/unnamed.safetensors";
  models::save_weights(unnamed->params(), unnamed_weights);
  CHECK(refusal({"export", "--weights", unnamed_weights, "--out", f.out, "--dynamic"})
            .find("--weights " + unnamed_weights + " does not record its model: give --model") != std::string::npos);
  CHECK(refusal(f.with({"--out", f.out})).find("give --input HxW (a static input size) or --dynamic (any size), one "
                                               "of them") != std::string::npos);
  CHECK(refusal(f.with({"--out", f.out, "--input", "64x96", "--dynamic"})).find("not both") != std::string::npos);
  CHECK(refusal(f.with({"--out", f.out, "--input", "64by96"})).find("--input: must be HxW") != std::string::npos);
  CHECK(refusal(f.with({"--out", f.out, "--input", "0x96"})).find("--input: must be HxW with H and W positive") !=
        std::string::npos);
  CHECK(refusal(f.with({"--out", f.out, "--input", "64x96", "--opset", "9"})).find("--opset 9: rdd exports opsets 11") !=
        std::string::npos);
  CHECK(refusal(f.with({"--out", f.out, "--input", "64x96", "--preset", "imagenet"})).find("--preset: imagenet not in {cirkd,mmseg}") !=
        std::string::npos);
  CHECK(!fs::exists(f.out));

  SUBCASE("weights of another architecture") {
    auto psp = test::deploy_test_model("psp_resnet18", 0.125, 19, 8);
    const std::string psp_weights = test::save_test_weights(*psp, f.dir + "/psp.safetensors");
    CHECK(refusal({"export", "--model", "deeplabv3_resnet18", "--width", "0.125", "--weights", psp_weights, "--out",
                   f.out, "--dynamic"})
              .find("--weights " + psp_weights + " holds a 'psp_resnet18' model, not --model 'deeplabv3_resnet18'") !=
          std::string::npos);
    CHECK(refusal({"export", "--model", "deeplabv3_resnet18", "--width", "0.25", "--weights", f.weights, "--out", f.out,
                   "--dynamic"})
              .find("has width 0.125000, but --width is 0.25") != std::string::npos);
    // Without metadata the strict load names what does not fit.
    auto bare = test::deploy_test_model("deeplabv3_mobilenetv2", 0.125, 19, 9);
    const std::string bare_weights = f.dir + "/bare.safetensors";
    models::save_weights(bare->params(), bare_weights);
    const std::string msg = refusal({"export", "--model", "deeplabv3_resnet18", "--width", "0.125", "--weights",
                                     bare_weights, "--out", f.out, "--dynamic"});
    CHECK(msg.find("missing") != std::string::npos);
    CHECK(msg.find("unexpected") != std::string::npos);
  }
  SUBCASE("an input size ONNX cannot serve exactly") {
    auto psp = test::deploy_test_model("psp_resnet18", 0.125, 19, 8);
    const std::string psp_weights = test::save_test_weights(*psp, f.dir + "/psp.safetensors");
    CHECK(refusal({"export", "--model", "psp_resnet18", "--width", "0.125", "--weights", psp_weights, "--out", f.out,
                   "--input", "8x64"})
              .find("head.psp.conv2.upsample resizes 2x2 to 1x8: to one row with align_corners") != std::string::npos);
    CHECK(!fs::exists(f.out));
  }
  SUBCASE("an output that cannot be written") {
    CHECK(refusal(f.with({"--out", f.dir, "--dynamic"})).find("--out " + f.dir + " is a folder") != std::string::npos);
    CHECK(refusal(f.with({"--out", f.dir + "/no/such/dir/m.onnx", "--dynamic"}))
              .find("the folder " + f.dir + "/no/such/dir does not exist") != std::string::npos);
    CHECK(refusal(f.with({"--out", f.weights + "/m.onnx", "--dynamic"}))
              .find(f.weights + " is not a folder") != std::string::npos);
    // A folder nobody can create files in (root included): /proc.
    CHECK(refusal(f.with({"--out", "/proc/rdd-export-test.onnx", "--dynamic"})).find("--out /proc/rdd-export-test.onnx") !=
          std::string::npos);
  }
}

TEST_CASE("rdd export --check refuses what is not an rdd export, and export-only flags") {
  Fixture f;
  REQUIRE(run_rdd(f.with({"--out", f.out, "--input", "32x32"})) == 0);
  CHECK(refusal({"export", "--check", f.out, "--weights", f.weights, "--out", f.dir + "/x.onnx"})
            .find("export --check: --out is for writing a model") != std::string::npos);
  CHECK(refusal({"export", "--check", f.out, "--weights", f.weights, "--width", "0.25"})
            .find("export --check: --width is for writing a model") != std::string::npos);
  CHECK(refusal({"export", "--check", f.out}).find("--weights is required") != std::string::npos);
  CHECK(refusal({"export", "--check", f.out, "--weights", f.weights, "--model", "psp_resnet18"})
            .find("--model psp_resnet18 but " + f.out + " holds 'deeplabv3_resnet18'") != std::string::npos);
  CHECK(refusal({"export", "--check", f.out, "--weights", f.weights, "--sizes", "64x64"})
            .find("takes only 32x32 inputs (it was exported with --input); --sizes is for a --dynamic export") !=
        std::string::npos);
  CHECK(refusal({"export", "--check", f.out, "--weights", f.weights, "--sizes", "32x32,32y32"})
            .find("--sizes: each size must be HxW with H and W positive (e.g. 64x96), got '32y32'") != std::string::npos);
  CHECK(refusal({"export", "--check", f.out, "--weights", f.weights, "--device", "cuda:99"}).find("--device cuda:99") !=
        std::string::npos);
  // Not ONNX at all.
  CHECK(refusal({"export", "--check", f.weights, "--weights", f.weights}).find(f.weights + ": not an ONNX model") !=
        std::string::npos);
  CHECK(refusal({"export", "--check", f.dir + "/missing.onnx", "--weights", f.weights})
            .find("cannot open the ONNX model") != std::string::npos);
  // ONNX, but not from rdd export: a valid one-node graph without rdd's metadata.
  onnx::ModelProto m;
  m.set_ir_version(onnx::IR_VERSION);
  m.add_opset_import()->set_version(17);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("identity");
  for (onnx::ValueInfoProto* v : {g->add_input(), g->add_output()}) {
    v->set_name(v == &g->input(0) ? "x" : "y");
    v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    v->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(4);
  }
  onnx::NodeProto* n = g->add_node();
  n->set_op_type("Identity");
  n->add_input("x");
  n->add_output("y");
  const std::string foreign = f.dir + "/foreign.onnx";
  std::ofstream(foreign, std::ios::binary) << m.SerializeAsString();
  CHECK(refusal({"export", "--check", foreign, "--weights", f.weights})
            .find(foreign + ": no 'model' in the model's metadata_props (was it written by `rdd export`?)") !=
        std::string::npos);
}
