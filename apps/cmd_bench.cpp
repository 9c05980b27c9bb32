// `rdd bench`: throughput measurements. Modes:
//   --data          the data loader: decode + augment + batch assembly with N worker threads (img/s)
//   --model NAME    a model's forward, training step or distillation step, by phase (bench_model.h)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "apps/bench_folded.h"
#include "apps/commands.h"
#include "apps/flags.h"
#include "data/augment.h"
#include "data/loader.h"
#include "engine/error.h"
#include "train/bench_model.h"

namespace rdd::apps {

namespace {
struct BenchArgs {
  bool data = false;
  // The model bench's options; --crop, --batch, --iterations, --warmup and --seed serve the loader bench too.
  train::ModelBenchOptions model{.model = {.name = {}}};
  data::DatasetSpec dataset;
  std::string preset = "cirkd";
  int workers = 2;
  bool cache = false;
};

int run_bench_data(const BenchArgs& a) {
  RDD_CHECK(!a.dataset.kind.empty(), "bench --data: needs --dataset and --data-root");
  const train::ModelBenchOptions& m = a.model;
  auto ds = std::make_shared<const data::Dataset>(data::open_dataset(a.dataset));
  const int ch = m.height, cw = m.width_px;
  const data::AugmentConfig aug = data::augment_preset(a.preset, ch, cw, ds->name);
  data::LoaderConfig lc;
  lc.batch_size = m.batch;
  lc.workers = a.workers;
  lc.prefetch = std::max(2, a.workers * 2);
  lc.seed = m.seed;
  lc.cache = a.cache;
  // With the cache, warm up for one full epoch so every sample is decoded once before timing.
  const int64_t warmup = a.cache ? std::max<int64_t>(m.warmup, (int64_t(ds->size()) + m.batch - 1) / m.batch) : m.warmup;
  lc.max_iterations = warmup + m.iterations;
  std::printf("bench --data: %s %s, %zu images, preset %s, crop %dx%d, batch %d, %d workers%s\n", ds->name.c_str(),
              ds->split.c_str(), ds->size(), a.preset.c_str(), ch, cw, m.batch, a.workers,
              a.cache ? ", in-memory cache" : "");
  data::Loader loader(ds, aug, lc);
  data::Batch b;
  for (int64_t i = 0; i < warmup; ++i) {
    RDD_CHECK(loader.next(b), "bench: loader ended early");
    loader.recycle(std::move(b));
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < m.iterations; ++i) {
    RDD_CHECK(loader.next(b), "bench: loader ended early");
    loader.recycle(std::move(b));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double imgs = double(m.iterations) * m.batch;
  std::printf("loader: %.1f img/s  (%.1f ms per batch of %d, %d batches timed after %lld warm-up)\n", imgs / secs,
              1000.0 * secs / m.iterations, m.batch, m.iterations, static_cast<long long>(warmup));
  if (a.cache)
    std::printf("cache: %zu samples, %.1f MiB\n", loader.cached_samples(), double(loader.cached_bytes()) / (1 << 20));
  return 0;
}

int run_bench(const BenchArgs& a) {
  if (a.data) return run_bench_data(a);
  if (!a.model.model.name.empty()) return train::run_model_bench(a.model, time_graph_forward);
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
  train::ModelBenchOptions& m = a->model;
  add_model_flags(sub, m.model, "Measure this model (see --mode)");
  sub->add_option("--mode", m.mode, "forward (eval), train (student step) or distill (teacher + student step)")
      ->check(CLI::IsMember({"forward", "train", "distill"}))
      ->capture_default_str();
  add_model_flags(sub, m.teacher, "Teacher model for --mode distill", "", /*teacher=*/true);
  sub->add_flag("--ops", m.ops,
                "With --model: also time each kind of operation (conv 1x1/kxk/depthwise forward and backward, "
                "batch norm, ReLU, resize, pooling, losses, optimizer) in a second round of steps, with its "
                "GFLOP/s and GB/s");
  sub->add_flag("--layers", m.layers,
                "With --model: also time each named layer (convolutions and batch norms, forward and backward) in "
                "another round of steps, slowest first");
  sub->add_option("--top", m.top_layers, "Rows of the --layers table")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_flag("--fold-bn", m.fold_bn,
                "With --mode forward: also time the exported graph's forward on rdd's kernels (main head only), with "
                "BatchNorm kept and folded into the convolutions (what `rdd export` writes); % of the eval forward");
  add_tf32_flag(sub, m.tf32);
  sub->add_option("--classes", m.num_classes, "Classes of the model")->capture_default_str();
  add_device_flag(sub, m.device);
  add_dataset_flags(sub, a->dataset, false);
  add_preset_flag(sub, a->preset);
  add_hw_option(sub, "--crop", m.height, m.width_px, "Crop (or, for --model, input) HxW");
  sub->add_option("--batch", m.batch, "Images per batch")->capture_default_str();
  add_workers_flag(sub, a->workers);
  sub->add_option("--iterations", m.iterations, "Batches timed")->capture_default_str();
  sub->add_option("--warmup", m.warmup, "Batches before timing")->capture_default_str();
  add_cache_flag(sub, a->cache);
  sub->add_option("--seed", m.seed, "Sampling/augmentation seed")->capture_default_str();
  add_kd_method_flags(sub, m.methods, "--mode distill: comparison KD terms (each a row of --ops)");
  return {sub, [a] { return run_bench(*a); }};
}

}  // namespace rdd::apps
