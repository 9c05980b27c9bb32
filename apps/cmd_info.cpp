// `rdd info`: what this build is and what this machine has; with --dataset, what a dataset holds
// (images, sizes, per-class pixel counts after the label mapping, the ignored fraction) and every bad
// file in it (exit 1 when there is any).
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>

#include "apps/commands.h"
#include "apps/data_options.h"
#include "apps/model_info.h"
#include "data/dataset.h"
#include "engine/blas_setup.h"
#include "engine/device.h"
#include "engine/thread_pool.h"

namespace rdd::apps {

namespace {
void print_build() {
  std::printf("rdd %s\n", RDD_VERSION);
  if (built_with_cuda()) {
    std::printf("build: CUDA %s, cuDNN %s, cuBLAS %s, NCCL %s\n", cuda_runtime_version().c_str(),
                cudnn_version().c_str(), cublas_version().c_str(), nccl_version().c_str());
    std::printf("driver: CUDA %s\n", cuda_driver_version().c_str());
  } else {
    std::printf("build: CPU-only build (no CUDA, cuDNN or NCCL)\n");
  }
  std::printf("cpu: %d threads, OpenBLAS core %s\n", cpu_threads(),
              *openblas_core_name() ? openblas_core_name() : "(not OpenBLAS)");
  const int n = gpu_count();
  if (n == 0) {
    std::printf("gpus: none (%s); rdd runs on the CPU\n", no_gpu_reason().c_str());
  } else {
    std::printf("gpus: %d\n", n);
    for (int i = 0; i < n; ++i) {
      const GpuInfo g = gpu_info(i);
      std::printf("  cuda:%d  %s  sm_%d%d  %.1f GiB  %d SMs\n", i, g.name.c_str(), g.sm_major, g.sm_minor,
                  double(g.memory_bytes) / double(1ull << 30), g.multiprocessors);
    }
  }
}

// Decodes every sample, counting pixels per class; every failure becomes one problem line.
int print_dataset(const DataOptions& o) {
  std::vector<std::string> problems;
  const data::Dataset ds = open_dataset(o, &problems);
  std::printf("dataset: %s, split %s, root %s\n", ds.name.c_str(), ds.split.c_str(), ds.root.c_str());
  std::printf("images: %zu\n", ds.size());
  std::vector<std::vector<int64_t>> counts(ds.size());
  std::vector<int64_t> ignored(ds.size(), 0);
  std::vector<std::string> sizes(ds.size()), errors(ds.size());
  parallel_for(0, int64_t(ds.size()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      try {
        const data::Sample s = ds.load(size_t(i));
        std::vector<int64_t> c(size_t(ds.num_classes), 0);
        int64_t ign = 0;
        for (uint8_t v : s.label.pixels) {
          if (v == data::kIgnoreU8) ++ign;
          else ++c[v];
        }
        counts[size_t(i)] = std::move(c);
        ignored[size_t(i)] = ign;
        sizes[size_t(i)] = std::to_string(s.image.width) + "x" + std::to_string(s.image.height);
      } catch (const std::exception& ex) {
        errors[size_t(i)] = ex.what();
      }
    }
  });
  std::vector<int64_t> total(size_t(ds.num_classes), 0);
  int64_t total_ignored = 0, pixels = 0;
  std::map<std::string, int> size_hist;
  for (size_t i = 0; i < ds.size(); ++i) {
    if (!errors[i].empty()) {
      problems.push_back(errors[i]);
      continue;
    }
    for (int c = 0; c < ds.num_classes; ++c) total[size_t(c)] += counts[i][size_t(c)];
    total_ignored += ignored[i];
    ++size_hist[sizes[i]];
  }
  for (int64_t v : total) pixels += v;
  pixels += total_ignored;
  std::printf("image sizes (WxH):");
  for (const auto& [s, n] : size_hist) std::printf(" %s ×%d", s.c_str(), n);
  std::printf("\n");
  std::printf("pixels per class after the label mapping (%d classes):\n", ds.num_classes);
  std::printf("  %-7s %-22s %14s %8s\n", "trainId", "name", "pixels", "share");
  for (int c = 0; c < ds.num_classes; ++c)
    std::printf("  %-7d %-22s %14lld %7.3f%%\n", c, ds.class_names[size_t(c)].c_str(),
                static_cast<long long>(total[size_t(c)]), pixels ? 100.0 * double(total[size_t(c)]) / double(pixels) : 0.0);
  std::printf("ignored: %lld of %lld pixels (%.3f%%)\n", static_cast<long long>(total_ignored),
              static_cast<long long>(pixels), pixels ? 100.0 * double(total_ignored) / double(pixels) : 0.0);
  if (problems.empty()) {
    std::printf("bad files: none\n");
    return 0;
  }
  std::printf("bad files: %zu\n", problems.size());
  for (const std::string& p : problems) std::printf("  %s\n", p.c_str());
  return 1;
}

int run_info(const DataOptions& o, const ModelInfoOptions& m) {
  if (!m.model.empty()) {
    ModelInfoOptions mo = m;
    if (o.num_classes > 0) mo.num_classes = o.num_classes;  // --num-classes is shared with --dataset list
    return print_model_info(mo);
  }
  print_build();
  if (!o.given()) return 0;
  std::printf("\n");
  return print_dataset(o);
}
}  // namespace

Command add_info_command(CLI::App& app) {
  auto o = std::make_shared<DataOptions>();
  CLI::App* sub = app.add_subcommand(
      "info",
      "Show the build (CUDA, cuDNN, NCCL versions) and the GPUs found; with --dataset, check a dataset: images, "
      "sizes, pixels per class, ignored fraction and every bad file (exit 1 when there is one)");
  add_data_options(sub, *o, false);
  auto m = std::make_shared<ModelInfoOptions>();
  sub->add_option("--model", m->model,
                  "Instead: a model's parameters, per-layer table (output shape, parameters, multiply-adds) and "
                  "forward FLOPs (deeplabv3_resnet101, deeplabv3_resnet50, deeplabv3_resnet18, psp_resnet101, "
                  "psp_resnet18, deeplabv3_mobilenetv2, psp_mobilenetv2); --num-classes N sets its classes (default 19)");
  sub->add_option("--input", m->input, "With --model: input resolution HxW")->capture_default_str();
  sub->add_option("--width", m->width, "With --model: channel width multiplier")->capture_default_str();
  return {sub, [o, m] { return run_info(*o, *m); }};
}

}  // namespace rdd::apps
