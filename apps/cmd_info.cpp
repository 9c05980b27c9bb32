// `rdd info`: what this build is and what this machine has; with --dataset, what a dataset holds
// (images, sizes, per-class pixel counts after the label mapping, the ignored fraction) and every bad
// file in it (exit 1 when there is any); with --model, a model's parameter count, a per-layer table
// (output shape, parameters, multiply-adds) and the forward FLOPs at a resolution.
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>

#include <sstream>

#include "apps/commands.h"
#include "apps/flags.h"
#include "data/dataset.h"
#include "engine/blas_setup.h"
#include "engine/device.h"
#include "engine/thread_pool.h"
#include "models/seg_model.h"

namespace rdd::apps {

namespace {
struct ModelInfoOptions {
  train::ModelChoice model{.name = {}};  // empty: no model report
  int input_h = 512, input_w = 1024;
  int num_classes = 19;
};

std::string with_commas(int64_t v) {
  const std::string digits = std::to_string(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string shape_x(const Shape& s) {
  std::ostringstream os;
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "×" : "") << s[i];
  return os.str();
}

// Left-aligned in `width` terminal columns (UTF-8: "→" and "×" are one column each).
std::string pad(const std::string& s, size_t width) {
  size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xC0) != 0x80;
  return cols >= width ? s + " " : s + std::string(width - cols, ' ');
}

// A model's parameters, per-layer table and FLOPs at a resolution (`rdd info --model`).
int print_model_info(const ModelInfoOptions& o) {
  const int h = o.input_h, w = o.input_w;
  RDD_CHECK(h >= 8 && w >= 8, "--input ", h, "x", w, ": height and width must be at least 8");
  auto model = models::build_model(o.model.name, {o.num_classes, o.model.width});
  const models::LayerTable t = model->trace({1, 3, h, w});
  const int64_t params = model->params().parameter_count();
  std::printf("model: %s, %d classes, width %g, %s\n", o.model.name.c_str(), o.num_classes, o.model.width,
              model->has_aux() ? "aux FCN head on layer3 (included below)" : "no aux head");
  std::printf("input: 1×3×%d×%d (one image, N×C×H×W); outputs at stride 8\n", h, w);
  std::printf("parameters: %s (%.2f M)\n", with_commas(params).c_str(), double(params) / 1e6);
  std::printf("\n%-40s %-34s %-18s %12s %12s\n", "layer", "op", "output", "params", "MMAC");
  for (const models::LayerRow& r : t.rows)
    std::printf("%s%s%s%12s %12.2f\n", pad(r.name, 41).c_str(), pad(r.op, 35).c_str(),
                pad(shape_x(r.output), 19).c_str(), r.params ? with_commas(r.params).c_str() : "-",
                double(r.macs) / 1e6);
  std::printf("\n");
  const double gmac = double(t.total_macs()) / 1e9;
  std::printf("total: %s parameters; %.2f GMAC (multiply-adds) = %.2f GFLOP per forward at %dx%d\n",
              with_commas(t.total_params()).c_str(), gmac, 2 * gmac, h, w);
  std::printf("  counted: every convolution (FLOP = 2 × MAC), output sizes with dilation; BN, ReLU, pooling and "
              "resize not counted\n");
  std::printf("  the RDD paper's counter (CIRKD utils/flops.py, dilation ignored): %.1f GMAC at %dx%d\n",
              double(t.total_paper_macs()) / 1e9, h, w);
  return 0;
}

void print_build() {
  std::printf("rdd %s\n", RDD_VERSION);
  if (cuda_is_emulated()) {
    std::printf("build: emulated CUDA (headers of CUDA %s): the GPU code runs on the CPU with CUDA's semantics; "
                "no cuDNN (the cuDNN graph wrapper is built for real GPUs only; convolutions run the CPU "
                "reference on the emulated device), no NCCL, no cuBLAS\n",
                cuda_runtime_version().c_str());
  } else if (built_with_cuda()) {
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
      std::printf("  %s  %s  sm_%d%d  %.1f GiB  %d SMs\n", device_label(Device::cuda(i)).c_str(), g.name.c_str(),
                  g.sm_major, g.sm_minor,
                  double(g.memory_bytes) / double(1ull << 30), g.multiprocessors);
    }
  }
}

// Decodes every sample, counting pixels per class; every failure becomes one problem line.
int print_dataset(const data::DatasetSpec& o) {
  std::vector<std::string> problems;
  const data::Dataset ds = data::open_dataset(o, &problems);
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
        sizes[size_t(i)] = std::to_string(s.image.height) + "x" + std::to_string(s.image.width);
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
  std::printf("image sizes (HxW, as --crop and --input take them):");
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

int run_info(const data::DatasetSpec& o, const ModelInfoOptions& m) {
  if (!m.model.name.empty()) {
    ModelInfoOptions mo = m;
    if (o.num_classes > 0) mo.num_classes = o.num_classes;  // --num-classes is shared with --dataset list
    return print_model_info(mo);
  }
  print_build();
  if (o.kind.empty()) return 0;
  std::printf("\n");
  return print_dataset(o);
}
}  // namespace

Command add_info_command(CLI::App& app) {
  auto o = std::make_shared<data::DatasetSpec>();
  CLI::App* sub = app.add_subcommand(
      "info",
      "Show the build (CUDA, cuDNN, NCCL versions) and the GPUs found; with --dataset, check a dataset: images, "
      "sizes, pixels per class, ignored fraction and every bad file (exit 1 when there is one)");
  add_dataset_flags(sub, *o, false);
  auto m = std::make_shared<ModelInfoOptions>();
  add_model_flags(sub, m->model,
                  "Instead: a model's parameters, per-layer table (output shape, parameters, multiply-adds) and "
                  "forward FLOPs (" + models::known_model_names() + "); --num-classes N sets its classes (default 19)");
  add_hw_option(sub, "--input", m->input_h, m->input_w, "With --model: input resolution HxW");
  return {sub, [o, m] { return run_info(*o, *m); }};
}

}  // namespace rdd::apps
