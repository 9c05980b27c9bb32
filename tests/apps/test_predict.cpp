// `rdd predict`, run in-process through the same command table as the binary: outputs exist, have the
// image size, hold palette colours only and equal the model's argmax; --overlay blends 50/50; folders
// are processed in name order; bad weights, inputs and output folders are refused naming the file.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "train/checkpoint.h"
#include "apps/commands.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/image.h"
#include "harness.h"
#include "layers/resize.h"
#include "models/seg_model.h"
#include "models/weights_io.h"
#include "rdd/segmentation_metrics.h"

using namespace rdd;
using namespace rdd::apps;
using namespace rdd::train;

namespace {

namespace fs = std::filesystem;

doctest::Contains contains(const std::string& s) { return doctest::Contains(s.c_str()); }

// Parses `args` (without the program name) like main() does and runs the chosen command.
int run_rdd(std::vector<std::string> args) {
  CLI::App app{"rdd test", "rdd"};
  app.require_subcommand(1);
  CommandTable commands;
  register_commands(app, commands);
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last-first
  app.parse(args);
  for (auto& [sub, run] : commands)
    if (sub->parsed()) return run();
  return -1;
}

// A textured RGB image (never flat: gradients plus Philox noise).
data::Image make_image(int h, int w, uint64_t seed) {
  const Tensor noise = test::random_tensor({h, w, 3}, seed, 0.0, 60.0);
  data::Image im;
  im.height = h;
  im.width = w;
  im.channels = 3;
  im.pixels.resize(size_t(h) * size_t(w) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const size_t i = (size_t(y) * size_t(w) + size_t(x)) * 3 + size_t(c);
        const double base = c == 0 ? 255.0 * x / w : c == 1 ? 255.0 * y / h : 128 + 100 * ((x / 7 + y / 5) % 2);
        im.pixels[i] = uint8_t(std::clamp(base * 0.75 + noise.at<float>(int64_t(i)), 0.0, 255.0));
      }
  return im;
}

struct Fixture {
  std::string dir = test::temp_dir("predict");
  std::string weights = dir + "/w.safetensors";
  std::unique_ptr<models::SegModel> model;
  Fixture() {
    model = models::build_model("deeplabv3_resnet18", {19, 0.125});
    model->params().materialize(Device::cpu());
    model->init_weights(7);
    models::save_weights(model->params(), weights,
                         {{"kind", "weights"}, {"model", "deeplabv3_resnet18"}, {"num_classes", "19"},
                          {"width", "0.125000"}});
    model->set_mode(layers::Mode::eval);
  }
  // The prediction the command should make: the eval transform, forward, upsample, argmax.
  std::vector<int32_t> reference_ids(const data::Image& im) {
    data::Sample s;
    s.image = im;
    s.label = {im.height, im.width, 1, std::vector<uint8_t>(size_t(im.height) * size_t(im.width), 255)};
    Tensor x = Tensor::empty({1, 3, im.height, im.width});
    Tensor l = Tensor::empty({1, im.height, im.width}, DType::i32);
    data::transform_eval(s, data::preset_normalization(data::Preset::cirkd), x.data<float>(), l.data<int32_t>());
    const Tensor up = layers::bilinear_resize_forward(model->forward(x).main, im.height, im.width, true);
    return argmax_channels(up).to_vector<int32_t>();
  }
};

std::vector<std::string> predict_args(const Fixture& f, const std::string& input, const std::string& out) {
  return {"predict", "--model", "deeplabv3_resnet18", "--width", "0.125", "--weights", f.weights,
          "--input", input, "--out", out, "--device", "cpu"};
}

}  // namespace

TEST_CASE("rdd predict: one image → palette PNG of the model's argmax at the image size, --overlay blends") {
  Fixture f;
  const data::Image im = make_image(37, 53, 11);
  data::write_png(f.dir + "/street.png", im);
  const std::string out = f.dir + "/out";
  std::vector<std::string> args = predict_args(f, f.dir + "/street.png", out);
  args.push_back("--overlay");
  REQUIRE(run_rdd(args) == 0);

  const data::Image pred = data::read_image(out + "/street_pred.png");
  REQUIRE(pred.height == 37);
  REQUIRE(pred.width == 53);
  const data::Palette palette = data::dataset_metadata("cityscapes").palette;
  const std::vector<int32_t> want = f.reference_ids(im);
  std::set<int32_t> classes(want.begin(), want.end());
  MESSAGE("classes predicted: ", classes.size());
  int64_t wrong = 0;
  for (size_t p = 0; p < want.size(); ++p) {
    REQUIRE(want[p] >= 0);
    REQUIRE(want[p] < 19);
    for (int c = 0; c < 3; ++c) wrong += pred.pixels[p * 3 + size_t(c)] != palette[size_t(want[p])][size_t(c)];
  }
  CHECK(wrong == 0);

  const data::Image overlay = data::read_image(out + "/street_overlay.png");
  REQUIRE(overlay.pixels.size() == im.pixels.size());
  int64_t off = 0;
  for (size_t i = 0; i < im.pixels.size(); ++i)
    off += overlay.pixels[i] != uint8_t((unsigned(im.pixels[i]) + pred.pixels[i] + 1) / 2);
  CHECK(off == 0);
}

TEST_CASE("rdd predict: a folder → every .png/.jpg in it, sorted; only palette colours") {
  Fixture f;
  const std::string in = f.dir + "/frames";
  fs::create_directories(in);
  data::write_png(in + "/b.png", make_image(24, 40, 3));
  data::write_jpeg(in + "/a.jpg", make_image(33, 17, 4));
  std::ofstream(in + "/notes.txt") << "not an image\n";
  const std::string out = f.dir + "/preds";
  REQUIRE(run_rdd(predict_args(f, in, out)) == 0);

  const data::Palette palette = data::dataset_metadata("cityscapes").palette;
  std::set<std::array<uint8_t, 3>> allowed(palette.begin(), palette.end());
  const std::pair<const char*, std::pair<int, int>> expected[] = {{"a", {33, 17}}, {"b", {24, 40}}};
  for (const auto& [name, hw] : expected) {
    const std::string p = out + "/" + name + "_pred.png";
    REQUIRE_MESSAGE(fs::exists(p), p);
    const data::Image pred = data::read_image(p);
    CHECK(pred.height == hw.first);
    CHECK(pred.width == hw.second);
    int64_t foreign = 0;
    for (size_t i = 0; i < pred.pixels.size(); i += 3)
      foreign += !allowed.count({pred.pixels[i], pred.pixels[i + 1], pred.pixels[i + 2]});
    CHECK(foreign == 0);
  }
  CHECK_FALSE(fs::exists(out + "/notes_pred.png"));
  CHECK_FALSE(fs::exists(out + "/a_overlay.png"));  // no --overlay

  // Writing into the input folder: a second run does not take the first run's outputs as inputs.
  const std::string self = f.dir + "/self";
  fs::create_directories(self);
  data::write_png(self + "/x.png", make_image(18, 22, 8));
  REQUIRE(run_rdd(predict_args(f, self, self)) == 0);
  REQUIRE(run_rdd(predict_args(f, self, self)) == 0);
  CHECK(fs::exists(self + "/x_pred.png"));
  CHECK_FALSE(fs::exists(self + "/x_pred_pred.png"));
}

TEST_CASE("rdd predict without --model and --width: the weights file says what it holds") {
  Fixture f;
  const data::Image im = make_image(19, 26, 17);
  data::write_png(f.dir + "/frame.png", im);
  REQUIRE(run_rdd({"predict", "--weights", f.weights, "--input", f.dir + "/frame.png", "--out", f.dir + "/out",
                   "--device", "cpu"}) == 0);
  const data::Image pred = data::read_image(f.dir + "/out/frame_pred.png");
  const data::Palette palette = data::dataset_metadata("cityscapes").palette;
  const std::vector<int32_t> want = f.reference_ids(im);
  int64_t wrong = 0;
  for (size_t p = 0; p < want.size(); ++p)
    for (int c = 0; c < 3; ++c) wrong += pred.pixels[p * 3 + size_t(c)] != palette[size_t(want[p])][size_t(c)];
  CHECK(wrong == 0);
  // A flag's own mistake is named before the weights file is read.
  CHECK_THROWS_WITH_AS(run_rdd({"predict", "--model", "deeplabv3_resnet19", "--weights", f.dir + "/none.safetensors",
                                "--input", f.dir + "/frame.png", "--out", f.dir + "/out"}),
                       doctest::Contains("--model: unknown model 'deeplabv3_resnet19'"), Error);
  CHECK_THROWS_WITH_AS(run_rdd({"predict", "--width", "1e-9", "--weights", f.dir + "/none.safetensors", "--input",
                                f.dir + "/frame.png", "--out", f.dir + "/out"}),
                       doctest::Contains("--width 1e-09 is outside [0.015625, 4]"), CLI::ValidationError);
  // 0 is a width out of range too, not "not given".
  CHECK_THROWS_WITH_AS(run_rdd({"predict", "--width", "0", "--weights", f.dir + "/none.safetensors", "--input",
                                f.dir + "/frame.png", "--out", f.dir + "/out"}),
                       doctest::Contains("--width 0 is outside"), CLI::ValidationError);
  // A file that does not name its model needs --model.
  models::save_weights(f.model->params(), f.dir + "/unnamed.safetensors");
  CHECK_THROWS_WITH_AS(run_rdd({"predict", "--weights", f.dir + "/unnamed.safetensors", "--input", f.dir + "/frame.png",
                                "--out", f.dir + "/out"}),
                       doctest::Contains("does not record its model: give --model"), Error);
  // The preset the file records is the default, and a --preset that disagrees is refused.
  models::save_weights(f.model->params(), f.dir + "/mmseg.safetensors",
                       {{"kind", "weights"}, {"model", "deeplabv3_resnet18"}, {"num_classes", "19"},
                        {"width", "0.125"}, {"preset", "mmseg"}});
  CHECK_THROWS_WITH_AS(run_rdd({"predict", "--weights", f.dir + "/mmseg.safetensors", "--preset", "cirkd", "--input",
                                f.dir + "/frame.png", "--out", f.dir + "/out"}),
                       doctest::Contains("--preset cirkd disagrees with --weights"), Error);
}

TEST_CASE("rdd predict reads a training checkpoint's model tensors and refuses an ImageNet backbone") {
  Fixture f;
  const data::Image im = make_image(21, 30, 13);
  data::write_png(f.dir + "/frame.png", im);
  Sgd sgd(f.model->params(), {0.9, 1e-4, false});
  CheckpointInfo info;
  info.iteration = 5;
  info.model = "deeplabv3_resnet18";
  info.config = {{"model", "deeplabv3_resnet18"}, {"width", 0.125}};
  const std::string ckpt = f.dir + "/checkpoint.safetensors";
  save_checkpoint(ckpt, f.model->params(), sgd, info);
  std::vector<std::string> args = predict_args(f, f.dir + "/frame.png", f.dir + "/out");
  args[6] = ckpt;
  REQUIRE(run_rdd(args) == 0);
  const data::Image pred = data::read_image(f.dir + "/out/frame_pred.png");
  const data::Palette palette = data::dataset_metadata("cityscapes").palette;
  const std::vector<int32_t> want = f.reference_ids(im);
  int64_t wrong = 0;
  for (size_t p = 0; p < want.size(); ++p)
    for (int c = 0; c < 3; ++c) wrong += pred.pixels[p * 3 + size_t(c)] != palette[size_t(want[p])][size_t(c)];
  CHECK(wrong == 0);
  // A checkpoint of a run at another width.
  info.config["width"] = 0.25;
  save_checkpoint(ckpt, f.model->params(), sgd, info);
  CHECK_THROWS_WITH_AS(run_rdd(args), doctest::Contains("has width 0.25"), Error);

  models::save_weights(f.model->params(), f.dir + "/bb.safetensors", {{"kind", "backbone"}, {"model", "deeplabv3_resnet18"}});
  args[6] = f.dir + "/bb.safetensors";
  CHECK_THROWS_WITH_AS(run_rdd(args), doctest::Contains("ImageNet backbone"), Error);
}

TEST_CASE("rdd predict refuses other models' weights, missing or undecodable inputs, an unwritable --out") {
  Fixture f;
  data::write_png(f.dir + "/ok.png", make_image(16, 16, 5));
  const std::string out = f.dir + "/out";

  // Weights of another architecture (by metadata), or of another width.
  auto psp = models::build_model("psp_resnet18", {19, 0.125});
  psp->params().materialize(Device::cpu());
  psp->init_weights(1);
  const std::string psp_weights = f.dir + "/psp.safetensors";
  models::save_weights(psp->params(), psp_weights, {{"kind", "weights"}, {"model", "psp_resnet18"}});
  std::vector<std::string> args = predict_args(f, f.dir + "/ok.png", out);
  args[6] = psp_weights;
  CHECK_THROWS_WITH_AS(run_rdd(args), doctest::Contains("holds a 'psp_resnet18' model"), Error);
  args = predict_args(f, f.dir + "/ok.png", out);
  args[4] = "0.25";
  CHECK_THROWS_WITH_AS(run_rdd(args), doctest::Contains("--width is 0.25"), Error);
  args = predict_args(f, f.dir + "/ok.png", out);
  args.insert(args.end(), {"--dataset", "camvid"});
  CHECK_THROWS_WITH_AS(run_rdd(args), doctest::Contains("predicts 19 classes"), Error);

  // Missing input.
  CHECK_THROWS_WITH_AS(run_rdd(predict_args(f, f.dir + "/nope.png", out)), contains(f.dir + "/nope.png"),
                       Error);
  // Undecodable image: alone it is an error naming it; in a folder the others are still written.
  const std::string in = f.dir + "/mixed";
  fs::create_directories(in);
  std::ofstream(in + "/broken.png") << "this is not a png";
  data::write_png(in + "/good.png", make_image(20, 12, 6));
  CHECK_THROWS_WITH_AS(run_rdd(predict_args(f, in + "/broken.png", out)), contains(in + "/broken.png"), Error);
  CHECK_THROWS_WITH_AS(run_rdd(predict_args(f, in, f.dir + "/mixed_out")), contains(in + "/broken.png"),
                       Error);
  CHECK(fs::exists(f.dir + "/mixed_out/good_pred.png"));
  CHECK_FALSE(fs::exists(f.dir + "/mixed_out/broken_pred.png"));
  // An empty folder.
  fs::create_directories(f.dir + "/empty");
  CHECK_THROWS_WITH_AS(run_rdd(predict_args(f, f.dir + "/empty", out)), doctest::Contains("no .png/.jpg"), Error);

  // --out below a regular file cannot be created.
  std::ofstream(f.dir + "/a_file") << "x";
  CHECK_THROWS_WITH_AS(run_rdd(predict_args(f, f.dir + "/ok.png", f.dir + "/a_file/sub")),
                       contains(f.dir + "/a_file/sub"), Error);
  // A bad --dataset is a CLI error.
  args = predict_args(f, f.dir + "/ok.png", out);
  args.insert(args.end(), {"--dataset", "kitti"});
  CHECK_THROWS_AS(run_rdd(args), CLI::ValidationError);
}

GPU_TEST_CASE("rdd predict --device cuda gives the CPU's prediction") {
  Fixture f;
  data::write_png(f.dir + "/street.png", make_image(45, 70, 12));
  std::vector<std::string> args = predict_args(f, f.dir + "/street.png", f.dir + "/cpu");
  REQUIRE(run_rdd(args) == 0);
  args[10] = f.dir + "/gpu";
  args[12] = "cuda";
  REQUIRE(run_rdd(args) == 0);
  const data::Image cpu = data::read_image(f.dir + "/cpu/street_pred.png");
  const data::Image gpu = data::read_image(f.dir + "/gpu/street_pred.png");
  REQUIRE(cpu.pixels.size() == gpu.pixels.size());
  int64_t differ = 0;
  for (size_t i = 0; i < cpu.pixels.size(); i += 3)
    differ += cpu.pixels[i] != gpu.pixels[i] || cpu.pixels[i + 1] != gpu.pixels[i + 1] ||
              cpu.pixels[i + 2] != gpu.pixels[i + 2];
  // Near-ties between two classes may flip with f32 summation order; anything more is a bug.
  CHECK(differ <= int64_t(cpu.pixels.size() / 3 / 200));
}
