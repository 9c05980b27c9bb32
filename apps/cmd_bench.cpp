// `rdd bench`: throughput measurements. Modes:
//   --data          the data loader: decode + augment + batch assembly with N worker threads (img/s)
//   --model NAME    a model's forward, training step or distillation step, by phase (bench_model.h)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "apps/bench_model.h"
#include "apps/commands.h"
#include "apps/data_options.h"
#include "apps/run_options.h"
#include "data/augment.h"
#include "data/loader.h"
#include "engine/error.h"

namespace rdd::apps {

namespace {
struct BenchArgs {
  bool data = false;
  ModelBenchOptions model;
  std::string mode = "train";
  std::string device = "auto";
  DataOptions dataset;
  std::string preset = "cirkd";
  std::string crop = "512x1024";
  int batch = 8;
  int workers = 2;
  int iterations = 20;
  int warmup = 2;
  bool cache = false;
  uint64_t seed = 1;
};

void parse_hw(const std::string& s, int& h, int& w, const char* flag) {
  const size_t x = s.find('x');
  try {
    RDD_CHECK(x != std::string::npos, "");
    h = std::stoi(s.substr(0, x));
    w = std::stoi(s.substr(x + 1));
  } catch (const std::exception&) {
    fail("bench: ", flag, " must be HxW (e.g. 512x1024), got '", s, "'");
  }
  RDD_CHECK(h > 0 && w > 0, "bench: ", flag, " must be positive, got '", s, "'");
}

int run_bench_data(const BenchArgs& a) {
  RDD_CHECK(a.dataset.given(), "bench --data: needs --dataset and --data-root");
  auto ds = std::make_shared<const data::Dataset>(open_dataset(a.dataset));
  int ch = 0, cw = 0;
  parse_hw(a.crop, ch, cw, "--crop");
  const data::AugmentConfig aug = data::augment_preset(a.preset, ch, cw, ds->name);
  data::LoaderConfig lc;
  lc.batch_size = a.batch;
  lc.workers = a.workers;
  lc.prefetch = std::max(2, a.workers * 2);
  lc.seed = a.seed;
  lc.cache = a.cache;
  // With the cache, warm up for one full epoch so every sample is decoded once before timing.
  const int64_t warmup = a.cache ? std::max<int64_t>(a.warmup, (int64_t(ds->size()) + a.batch - 1) / a.batch) : a.warmup;
  lc.max_iterations = warmup + a.iterations;
  std::printf("bench --data: %s %s, %zu images, preset %s, crop %dx%d, batch %d, %d workers%s\n", ds->name.c_str(),
              ds->split.c_str(), ds->size(), a.preset.c_str(), ch, cw, a.batch, a.workers,
              a.cache ? ", in-memory cache" : "");
  data::Loader loader(ds, aug, lc);
  data::Batch b;
  for (int64_t i = 0; i < warmup; ++i) {
    RDD_CHECK(loader.next(b), "bench: loader ended early");
    loader.recycle(std::move(b));
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < a.iterations; ++i) {
    RDD_CHECK(loader.next(b), "bench: loader ended early");
    loader.recycle(std::move(b));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double imgs = double(a.iterations) * a.batch;
  std::printf("loader: %.1f img/s  (%.1f ms per batch of %d, %d batches timed after %lld warm-up)\n", imgs / secs,
              1000.0 * secs / a.iterations, a.batch, a.iterations, static_cast<long long>(warmup));
  if (a.cache)
    std::printf("cache: %zu samples, %.1f MiB\n", loader.cached_samples(), double(loader.cached_bytes()) / (1 << 20));
  return 0;
}

int run_bench(const BenchArgs& a) {
  if (a.data) return run_bench_data(a);
  if (!a.model.model.empty()) {
    ModelBenchOptions o = a.model;
    parse_hw(a.crop, o.height, o.width_px, "--crop");
    o.batch = a.batch;
    o.iterations = a.iterations;
    o.warmup = a.warmup;
    o.mode = a.mode;
    o.device = a.device;
    o.seed = a.seed;
    return run_model_bench(o);
  }
  std::fprintf(stderr, "rdd bench: choose what to measure (--data, or --model NAME)\n");
  return 2;
}
}  // namespace

Command add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand(
      "bench", "Measure throughput: the data loader (--data), or a model's forward / training / distillation step "
               "by phase (--model NAME --mode forward|train|distill)");
  sub->add_flag("--data", a->data, "Measure the data loader: decode + augment + batch, img/s");
  a->model.model.clear();
  sub->add_option("--model", a->model.model, "Measure this model (see --mode)");
  sub->add_option("--width", a->model.width, "Model width multiplier")->capture_default_str();
  sub->add_option("--mode", a->mode, "forward (eval), train (student step) or distill (teacher + student step)")
      ->check(CLI::IsMember({"forward", "train", "distill"}))
      ->capture_default_str();
  sub->add_option("--teacher", a->model.teacher, "Teacher model for --mode distill");
  sub->add_flag("--ops", a->model.ops,
                "With --model: also time each kind of operation (conv 1x1/kxk/depthwise forward and backward, "
                "batch norm, ReLU, resize, pooling, losses, optimizer) in a second round of steps, with its "
                "GFLOP/s and GB/s");
  sub->add_flag("--layers", a->model.layers,
                "With --model: also time each named layer (convolutions and batch norms, forward and backward) in "
                "another round of steps, slowest first");
  sub->add_option("--top", a->model.top_layers, "Rows of the --layers table")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_flag("--fold-bn", a->model.fold_bn,
                "With --mode forward: also time the exported graph's forward on rdd's kernels (main head only), with "
                "BatchNorm kept and folded into the convolutions (what `rdd export` writes); % of the eval forward");
  add_tf32_flag(sub, a->model.tf32);
  sub->add_option("--teacher-width", a->model.teacher_width, "Teacher width multiplier")->capture_default_str();
  sub->add_option("--classes", a->model.num_classes, "Classes of the model")->capture_default_str();
  sub->add_option("--device", a->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  add_data_options(sub, a->dataset, false);
  sub->add_option("--preset", a->preset, "Augmentation preset: cirkd or mmseg")
      ->check(CLI::IsMember({"cirkd", "mmseg"}))
      ->capture_default_str();
  sub->add_option("--crop", a->crop, "Crop (or, for --model, input) HxW")->capture_default_str();
  sub->add_option("--batch", a->batch, "Images per batch")->capture_default_str();
  sub->add_option("--workers", a->workers, "Loader worker threads")->capture_default_str();
  sub->add_option("--iterations", a->iterations, "Batches timed")->capture_default_str();
  sub->add_option("--warmup", a->warmup, "Batches before timing")->capture_default_str();
  sub->add_flag("--cache", a->cache, "Keep decoded images in memory (warms up for one epoch first)");
  sub->add_option("--seed", a->seed, "Sampling/augmentation seed")->capture_default_str();
  return {sub, [a] { return run_bench(*a); }};
}

}  // namespace rdd::apps
