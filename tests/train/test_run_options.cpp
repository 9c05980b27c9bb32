#include "train/run_options.h"

#include <cmath>
#include <limits>

#include "engine/error.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::train;

namespace {

RunOptions valid(bool distill = false) {
  RunOptions o;
  o.model = {"deeplabv3_resnet18", 0.125};
  o.data = {"cityscapes", "/data", "train"};
  o.out = "/tmp/run";
  if (distill) {
    o.teacher = {"deeplabv3_resnet18", 0.25};
    o.teacher_weights = "/tmp/t.safetensors";
  }
  return o;
}

std::string refusal(const RunOptions& o, bool distill = false) {
  return test::error_message([&] { validate_run_options(o, distill); });
}

}  // namespace

TEST_CASE("numeric flags are checked for range up front, naming the flag and the range") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_NOTHROW(validate_run_options(valid(), false));
  RunOptions o = valid();
  o.power = nan;
  CHECK(refusal(o).find("--power nan is not a number in [0, ∞)") != std::string::npos);
  o = valid();
  o.sgd.momentum = 5;
  CHECK(refusal(o).find("--momentum 5 is outside [0, 1)") != std::string::npos);
  o = valid();
  o.model.width = 1e-9;
  CHECK(refusal(o).find("--width 1e-09 is outside [0.015625, 4]") != std::string::npos);
  o = valid();
  o.lr = std::numeric_limits<double>::infinity();
  CHECK(refusal(o).find("--lr inf") != std::string::npos);
  o = valid();
  o.sgd.weight_decay = -1e-4;
  CHECK(refusal(o).find("--weight-decay") != std::string::npos);
  o = valid();
  o.print_every = 0;
  CHECK(refusal(o).find("--print-every") != std::string::npos);
  o = valid(true);
  o.loss.kd_temperature = nan;
  CHECK(refusal(o, true).find("--kd-temperature nan") != std::string::npos);
  o = valid(true);
  o.teacher.width = 1e-9;
  CHECK(refusal(o, true).find("--teacher-width") != std::string::npos);
}

TEST_CASE("run flags that contradict each other are refused") {
  RunOptions o = valid();
  o.overwrite = true;
  o.resume = "/tmp/run/checkpoint.safetensors";
  CHECK(refusal(o).find("--overwrite and --resume") != std::string::npos);
  o = valid();
  o.val_list = "/data/val.txt";
  CHECK(refusal(o).find("--val-list is for --dataset list") != std::string::npos);
  o = valid();
  o.data = {"list", "/data/train.txt", "train", 5, 255};
  o.val_every = 10;
  CHECK(refusal(o).find("--val-every with --dataset list needs --val-list") != std::string::npos);
  o.val_list = "/data/val.txt";
  CHECK_NOTHROW(validate_run_options(o, false));
  o.val_list.clear();
  o.val_every = 0;
  CHECK_NOTHROW(validate_run_options(o, false));  // a list dataset without validation
}
