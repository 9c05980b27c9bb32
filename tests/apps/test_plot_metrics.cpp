// scripts/plot_metrics.py: a readable PNG from several runs' metrics.jsonl (run folders or files), and a
// clear error naming the file when one is missing, empty or not JSON lines.
#include <cmath>
#include <fstream>
#include <set>

#include "data/image.h"
#include "harness.h"

using namespace rdd;

namespace {

// A run's metrics as `rdd train/distill` writes them: a decaying loss with noise, a validation every
// 50 iterations; `distill` adds kd and the RDD stage share (TFE until iteration 40).
void write_metrics(const std::string& path, bool distill, uint64_t seed) {
  const Tensor noise = test::random_tensor({200}, seed, -0.2, 0.2);
  std::ofstream f(path);
  for (int it = 1; it <= 200; ++it) {
    const double task = 2.5 * std::exp(-it / 60.0) + 0.4 + noise.at<float>(it - 1);
    f << "{\"iter\":" << it << ",\"lr\":" << 0.01 * std::pow(1 - (it - 1) / 200.0, 0.9) << ",\"task\":" << task
      << ",\"task.main\":" << 0.7 * task << ",\"task.aux\":" << 0.75 * task;
    double loss = task;
    if (distill) {
      const double kd = 0.8 * std::exp(-it / 80.0) + 0.1;
      loss += kd;
      f << ",\"kd\":" << kd << ",\"task.tfe_share\":" << (it < 40 ? 1.0 : 0.0);
    }
    f << ",\"loss\":" << loss << ",\"img_per_s\":12.5,\"time\":" << 1796000000.5 + it << "}\n";  // time: not a loss term
    if (it % 50 == 0)
      f << "{\"iter\":" << it << ",\"val_miou\":" << 0.3 + 0.1 * it / 200.0 + (distill ? 0.02 : 0)
        << ",\"val_pixel_accuracy\":0.8}\n";
  }
}

int plot(const std::string& args, std::string* out) {
  return test::run_command(test::python() + " " + test::source_path("scripts/plot_metrics.py") + " " + args, out);
}

}  // namespace

TEST_CASE("plot_metrics.py: several runs → one PNG with the summary; bad inputs are named") {
  const std::string dir = test::temp_dir("plot_metrics");
  test::run_command("mkdir -p " + dir + "/baseline " + dir + "/rdd " + dir + "/not_a_run");
  write_metrics(dir + "/baseline/metrics.jsonl", false, 1);
  write_metrics(dir + "/rdd/metrics.jsonl", true, 2);
  std::string out;
  REQUIRE_MESSAGE(plot(dir + "/baseline " + dir + "/rdd/metrics.jsonl --out " + dir + "/curves.png", &out) == 0, out);
  CHECK(out.find("baseline: 200 training records, last iteration 200") != std::string::npos);
  CHECK(out.find("rdd: 200 training records") != std::string::npos);
  CHECK(out.find("final mIoU 42.00%, best 42.00% at 200") != std::string::npos);  // rdd: 0.3 + 0.1 + 0.02
  const data::Image png = data::read_image(dir + "/curves.png");
  CHECK(png.width == 1800);
  CHECK(png.height == 520);
  std::set<uint32_t> colours;
  for (size_t i = 0; i < png.pixels.size(); i += 3)
    colours.insert(uint32_t(png.pixels[i]) << 16 | uint32_t(png.pixels[i + 1]) << 8 | png.pixels[i + 2]);
  CHECK(colours.size() > 20);  // lines in several colours, text, grid: not a blank canvas

  // Errors name the file and the problem, exit 1, and write nothing.
  CHECK(plot(dir + "/missing --out " + dir + "/x.png", &out) == 1);
  CHECK(out.find(dir + "/missing: no such file or folder") != std::string::npos);
  CHECK(plot(dir + "/not_a_run --out " + dir + "/x.png", &out) == 1);
  CHECK(out.find(dir + "/not_a_run: no metrics.jsonl") != std::string::npos);
  std::ofstream(dir + "/empty.jsonl").close();
  CHECK(plot(dir + "/empty.jsonl --out " + dir + "/x.png", &out) == 1);
  CHECK(out.find(dir + "/empty.jsonl: empty") != std::string::npos);
  std::ofstream(dir + "/bad.jsonl") << "{\"iter\": 1, \"loss\": 2}\nnot json\n";
  CHECK(plot(dir + "/bad.jsonl --out " + dir + "/x.png", &out) == 1);
  CHECK(out.find(dir + "/bad.jsonl line 2: not JSON") != std::string::npos);
  CHECK(plot(dir + "/baseline --out " + dir + "/no/such/folder.png", &out) == 1);
  CHECK(out.find("does not exist") != std::string::npos);
  std::ifstream none(dir + "/x.png");
  CHECK_FALSE(none.good());
}
