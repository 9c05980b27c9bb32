// One training step for every caller: `rdd bench --mode distill|train` (bench_step) and the trainer
// (run_step) both run train_step, so from the same state they must reach the same weights.
#include <string>
#include <vector>

#include "harness.h"
#include "train/bench_model.h"
#include "train/model_weights.h"
#include "train/trainer.h"

using namespace rdd;
using namespace rdd::train;

namespace {
std::vector<float> values_of(const ParamStore& store) { return store.flat_values().to_vector<float>(); }

std::vector<float> buffers_of(ParamStore& store) {
  std::vector<float> all;
  for (const Param* b : store.buffers())
    if (b->dtype == DType::f32)
      for (float v : b->value.to_vector<float>()) all.push_back(v);
  return all;
}
}  // namespace

TEST_CASE("bench's step and the trainer's step give identical weights after k steps from the same state") {
  for (const std::string mode : {"distill", "train"}) {
    CAPTURE(mode);
    const bool distill = mode == "distill";
    const ModelBenchOptions b{.model = {"deeplabv3_resnet18", 0.125},
                              .teacher = {distill ? "deeplabv3_resnet18" : "", 0.25},
                              .mode = mode,
                              .num_classes = 5,
                              .batch = 2,
                              .height = 40,
                              .width_px = 48,
                              .seed = 7};
    StepModels bench = make_bench_models(b, Device::cpu());

    // The same step as `rdd train|distill` options: the bench's teacher as the teacher file, bench's loss
    // (TSE + KD without class weights, or the task CE), its learning rate 0.01 (poly with power 0 is
    // constant).
    const int k = 3;
    RunOptions o;
    o.model = b.model;
    o.seed = b.seed;
    o.iters = k;
    o.lr = 0.01;
    o.power = 0;
    o.loss.rdd.tse.min_kept = int64_t(b.batch) * b.height * b.width_px / 21;
    if (distill) {
      const std::string teacher_file = test::temp_dir("train_step") + "/teacher.safetensors";
      save_model_weights(*bench.teacher, teacher_file);
      o.teacher = b.teacher;
      o.teacher_weights = teacher_file;
      o.loss.rdd_stages = "tse";
      o.loss.kd = 1;
      o.loss.tse_class_weights = "none";
    }
    StepModels run = make_run_models(o, distill, b.num_classes, "cityscapes", Device::cpu());
    // run_training's gradient reducer, here for one rank (it must change nothing).
    dist::SoloCommunicator solo;
    dist::OverlappedGradReducer reducer(solo, run.student->params(),
                                        dist::make_grad_buckets(run.student->params(), size_t(25) << 20));

    const std::vector<float> start = values_of(bench.student->params());
    REQUIRE(values_of(run.student->params()) == start);
    const Tensor images = test::random_tensor({b.batch, 3, b.height, b.width_px}, 11);
    const Tensor labels = test::random_labels({b.batch, b.height, b.width_px}, b.num_classes, 12);
    for (int it = 1; it <= k; ++it) {
      const method::LossTerms by_bench = bench_step(bench, b, it, k, images, labels);
      const method::LossTerms by_trainer = run_step(run, o, it, images, labels, &reducer);
      CHECK(by_bench.total() == by_trainer.total());
    }
    // Bit for bit: weights, BN statistics, momentum; and the steps did move the weights.
    CHECK(values_of(run.student->params()) == values_of(bench.student->params()));
    CHECK(buffers_of(run.student->params()) == buffers_of(bench.student->params()));
    CHECK(run.sgd->momentum_buffer().to_vector<float>() == bench.sgd->momentum_buffer().to_vector<float>());
    CHECK(values_of(run.student->params()) != start);
  }
}

TEST_CASE("bench --fold-bn: the graph forward it is handed runs on the eval-mode student and the bench's images") {
  ModelBenchOptions b{.model = {"psp_mobilenetv2", 0.125},
                      .mode = "forward",
                      .num_classes = 5,
                      .batch = 1,
                      .height = 32,
                      .width_px = 48,
                      .iterations = 2,
                      .warmup = 1,
                      .device = "cpu",
                      .fold_bn = true};
  std::vector<bool> folds;
  const GraphForwardTimer timer = [&](const models::SegModel& m, const Tensor& images, bool fold, int warmup,
                                      int iterations) {
    CHECK(m.mode() == layers::Mode::eval);
    CHECK(images.shape() == Shape{1, 3, 32, 48});  // (N, 3, H, W) as --batch and --crop say
    CHECK(warmup == 1);
    CHECK(iterations == 2);
    folds.push_back(fold);
    return 1.0;
  };
  CHECK(run_model_bench(b, timer) == 0);
  CHECK(folds == std::vector<bool>{false, true});  // BN kept, then folded
  // train/ cannot build the exported graph itself (it does not see deploy/): without a timer it refuses.
  CHECK(test::error_message([&] { run_model_bench(b); }).find("bench --fold-bn: no exported-graph forward") !=
        std::string::npos);
  b.mode = "train";
  CHECK(test::error_message([&] { run_model_bench(b, timer); }).find("use it with --mode forward") !=
        std::string::npos);
}
