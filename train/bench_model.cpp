#include "train/bench_model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <vector>

#include "engine/cudnn_graph.h"
#include "engine/op_profile.h"
#include "engine/rng.h"
#include "train/resolve_device.h"

namespace rdd::train {

namespace {
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Accumulates wall time per phase, waiting for the device at each boundary.
class PhaseTimer {
 public:
  explicit PhaseTimer(Device d) : device_(d) {}
  void start() {
    synchronize(device_);
    t_ = Clock::now();
  }
  void mark(const std::string& phase) {
    synchronize(device_);
    const auto now = Clock::now();
    if (!order_.count(phase)) {
      order_[phase] = names_.size();
      names_.push_back(phase);
    }
    ms_[phase] += std::chrono::duration<double, std::milli>(now - t_).count();
    t_ = now;
  }
  void reset() { ms_.clear(); }
  const std::vector<std::string>& names() const { return names_; }
  double ms(const std::string& p) const { return ms_.count(p) ? ms_.at(p) : 0.0; }

 private:
  Device device_;
  Clock::time_point t_;
  std::map<std::string, size_t> order_;
  std::vector<std::string> names_;
  std::map<std::string, double> ms_;
};
// The per-op table of `bench --ops`: every op timed alone (device synchronised around it), so the
// ops' sum is a little above a free-running step; "outside ops" is host work and allocation between them.
void print_op_table(const std::vector<OpStats>& ops, int iterations, double profiled_step_ms) {
  double ops_ms = 0;
  for (const OpStats& op : ops) ops_ms += op.ms / iterations;
  std::printf("by op (a second round of %d steps, each op timed alone; step %.2f ms there):\n", iterations,
              profiled_step_ms);
  std::printf("  %-32s %9s %10s %7s %10s %9s\n", "op", "calls", "ms/step", "share", "GFLOP/s", "GB/s");
  for (const OpStats& op : ops) {
    const double ms = op.ms / iterations;
    char gflops[32] = "", gbs[32] = "";
    if (op.flops > 0) std::snprintf(gflops, sizeof gflops, "%.1f", op.flops / (op.ms * 1e6));
    if (op.bytes > 0) std::snprintf(gbs, sizeof gbs, "%.1f", op.bytes / (op.ms * 1e6));
    std::printf("  %-32s %9.1f %10.3f %6.1f%% %10s %9s\n", op.name.c_str(), double(op.calls) / iterations, ms,
                100 * ms / profiled_step_ms, gflops, gbs);
  }
  const double outside = profiled_step_ms - ops_ms;
  std::printf("  %-32s %9s %10.3f %6.1f%%\n", "outside ops", "", outside, 100 * outside / profiled_step_ms);
}

// The per-layer table of `bench --layers`: the `top` slowest "<layer> forward|backward" entries, each
// timed alone, then the rest summed; the gap to the step is everything outside named layers (ReLU, add,
// resize, losses, optimizer).
void print_layer_table(std::vector<OpStats> rows, int iterations, double profiled_step_ms, int top) {
  std::sort(rows.begin(), rows.end(), [](const OpStats& a, const OpStats& b) { return a.ms > b.ms; });
  double layers_ms = 0;
  for (const OpStats& r : rows) layers_ms += r.ms / iterations;
  std::printf("by layer (a round of %d steps, each layer timed alone; step %.2f ms there; %zu entries, the %d "
              "slowest):\n",
              iterations, profiled_step_ms, rows.size(), std::min<int>(top, int(rows.size())));
  std::printf("  %-44s %10s %7s %10s %9s\n", "layer", "ms/step", "share", "GFLOP/s", "GB/s");
  double shown_ms = 0;
  for (size_t i = 0; i < rows.size() && int(i) < top; ++i) {
    const OpStats& r = rows[i];
    const double ms = r.ms / iterations;
    shown_ms += ms;
    char gflops[32] = "", gbs[32] = "";
    if (r.flops > 0) std::snprintf(gflops, sizeof gflops, "%.1f", r.flops / (r.ms * 1e6));
    if (r.bytes > 0) std::snprintf(gbs, sizeof gbs, "%.1f", r.bytes / (r.ms * 1e6));
    std::printf("  %-44s %10.3f %6.1f%% %10s %9s\n", r.name.c_str(), ms, 100 * ms / profiled_step_ms, gflops, gbs);
  }
  const double rest = layers_ms - shown_ms, outside = profiled_step_ms - layers_ms;
  std::printf("  %-44s %10.3f %6.1f%%\n", "the other layers", rest, 100 * rest / profiled_step_ms);
  std::printf("  %-44s %10.3f %6.1f%%\n", "outside named layers", outside, 100 * outside / profiled_step_ms);
}

}  // namespace

StepModels make_bench_models(const ModelBenchOptions& o, Device device) {
  StepModels m;
  m.student = models::build_model(o.model.name, {o.num_classes, o.model.width});
  m.student->params().materialize(device);
  m.student->init_weights(o.seed);
  m.sgd = std::make_unique<Sgd>(m.student->params(), SgdOptions{});
  // --mode train: the task CE alone; --mode distill: TSE + KD (λ 1) + the comparison methods asked for.
  LossOptions loss;
  if (o.mode == "distill") {
    m.teacher = models::build_model(o.teacher.name, {o.num_classes, o.teacher.width});
    m.teacher->params().materialize(device, /*with_grads=*/false);
    m.teacher->init_weights(o.seed + 1);
    m.teacher->set_mode(layers::Mode::eval);
    // The benched step is TSE, which pairs the heads: aux with aux.
    RDD_CHECK(m.teacher->has_aux() || !m.student->has_aux(), "bench: --teacher ", o.teacher.name,
              " has no aux head, which the TSE stage needs for --model ", o.model.name, "'s aux head");
    loss = o.methods;
    loss.rdd = {};
    loss.rdd_stages = "tse";
    loss.kd = 1;
    loss.cwd = 0;
  }
  loss.rdd.tse.min_kept = int64_t(o.batch) * o.height * o.width_px / 21;  // ≈4.8%, as 100k of 4×512×1024
  DistillShapes shapes;
  shapes.num_classes = o.num_classes;
  shapes.student_feature_channels = m.student->feature_channels();
  if (m.teacher) shapes.teacher_feature_channels = m.teacher->feature_channels();
  m.distiller = make_distiller(loss, o.iterations, Tensor(), shapes, device, o.seed);
  if (m.distiller->has_parameters()) m.distill_sgd = std::make_unique<Sgd>(m.distiller->params(), SgdOptions{});
  return m;
}

method::LossTerms bench_step(StepModels& m, const ModelBenchOptions& o, int i, int total, const Tensor& images,
                             const Tensor& labels, const PhaseHook& phase_done) {
  return train_step(m, {.iteration = i, .iterations = total, .lr = 0.01, .seed = o.seed}, images, labels, nullptr,
                    phase_done);
}

int run_model_bench(const ModelBenchOptions& o, const GraphForwardTimer& time_graph_forward) {
  RDD_CHECK(o.mode == "forward" || o.mode == "train" || o.mode == "distill", "bench --mode: '", o.mode,
            "' (forward, train or distill)");
  RDD_CHECK(o.mode != "distill" || !o.teacher.name.empty(), "bench --mode distill needs --teacher");
  RDD_CHECK(o.mode == "distill" || o.teacher.name.empty(), "bench --teacher is for --mode distill, not --mode ",
            o.mode);
  RDD_CHECK(o.batch >= 1 && o.iterations >= 1 && o.warmup >= 0, "bench: --batch and --iterations must be ≥ 1");
  RDD_CHECK(!o.fold_bn || o.mode == "forward", "bench --fold-bn times the eval forward: use it with --mode forward");
  RDD_CHECK(!o.fold_bn || time_graph_forward, "bench --fold-bn: no exported-graph forward to time (the caller "
            "passed no GraphForwardTimer)");
  const Device device = resolve_device(o.device);
  cudnn::set_allow_tf32(o.tf32);
  StepModels m = make_bench_models(o, device);
  models::SegModel& student = *m.student;

  // Random images and labels, made once on the device (the loader is benchmarked by --data).
  Tensor images = Tensor::empty({o.batch, 3, o.height, o.width_px});
  fill_normal(images, 0, 50, o.seed, 1);
  Tensor labels = Tensor::empty({o.batch, o.height, o.width_px}, DType::i32);
  fill_randint(labels, 0, o.num_classes, o.seed, 2);
  images = images.to(device);
  labels = labels.to(device);
  if (o.mode == "forward") student.set_mode(layers::Mode::eval);

  PhaseTimer timer(device);
  // Rounds of o.iterations steps after the warm-up: the phases first (free-running but for the phase
  // boundaries), then with --ops the op profile by kind, then with --layers by layer; the profiles'
  // synchronisations would distort the phase times, so each gets its own round.
  std::vector<int> profile_rounds;  // 0: kind, 1: layer
  if (o.ops) profile_rounds.push_back(0);
  if (o.layers) profile_rounds.push_back(1);
  const int total = o.warmup + o.iterations * (1 + int(profile_rounds.size()));
  std::vector<double> profiled_ms(profile_rounds.size(), 0.0);
  std::vector<std::vector<OpStats>> profiles(profile_rounds.size());
  int round = -1;  // index into profile_rounds while profiling
  const bool distill = m.teacher != nullptr;
  auto phase_done = [&](StepPhase p) {  // phases are timed in the first round only; the optimizer ends the step
    if (op_profile_enabled() || p == StepPhase::optimizer) return;
    switch (p) {
      case StepPhase::student_forward: timer.mark("student forward"); break;
      case StepPhase::teacher_forward: timer.mark("teacher forward (eval)"); break;
      case StepPhase::losses: timer.mark(distill ? "losses (CE/TSE + KD)" : "loss (CE)"); break;
      case StepPhase::backward: timer.mark("student backward"); break;
      case StepPhase::optimizer: break;
    }
  };
  for (int i = 1; i <= total; ++i) {
    if (i == o.warmup + 1) timer.reset();
    if (i > o.warmup && (i - o.warmup - 1) % o.iterations == 0 && i > o.warmup + o.iterations) {
      if (round >= 0) profiles[size_t(round)] = op_profile_take();
      ++round;
      op_profile_take();
      op_profile_enable(true, profile_rounds[size_t(round)] == 0 ? OpLevel::kind : OpLevel::layer);
      synchronize(device);
    }
    const auto step_start = Clock::now();
    timer.start();
    if (o.mode == "forward") {
      student.forward(images);
      if (op_profile_enabled()) synchronize(device), profiled_ms[size_t(round)] += ms_since(step_start);
      else timer.mark("student forward (eval)");
      continue;
    }
    bench_step(m, o, i, total, images, labels, phase_done);
    if (op_profile_enabled()) synchronize(device), profiled_ms[size_t(round)] += ms_since(step_start);
    else timer.mark("optimizer (fused SGD)");
  }
  if (round >= 0) profiles[size_t(round)] = op_profile_take();
  op_profile_enable(false);

  double step_ms = 0;
  for (const auto& p : timer.names()) step_ms += timer.ms(p) / o.iterations;
  const double student_macs = double(student.trace({o.batch, 3, o.height, o.width_px}).total_macs());
  const double teacher_macs = distill ? double(m.teacher->trace({o.batch, 3, o.height, o.width_px}).total_macs()) : 0;
  // FLOPs of one step: forward = 2·MACs, backward ≈ 2× forward.
  const double flops = o.mode == "forward" ? 2 * student_macs : 2 * teacher_macs + 3 * 2 * student_macs;
  std::printf("bench %s: %s (width %g)%s, batch %d × %dx%d, %s%s, %d iterations after %d warm-up\n", o.mode.c_str(),
              o.model.name.c_str(), o.model.width, distill ? (", teacher " + o.teacher.name).c_str() : "", o.batch, o.height,
              o.width_px, device.str().c_str(), device.is_cuda() ? (o.tf32 ? ", TF32 convs" : ", f32 convs") : "",
              o.iterations, o.warmup);
  std::printf("  %-26s %10s %7s\n", "phase", "ms/step", "share");
  for (const auto& p : timer.names()) {
    const double ms = timer.ms(p) / o.iterations;
    std::printf("  %-26s %10.2f %6.1f%%\n", p.c_str(), ms, 100 * ms / step_ms);
  }
  std::printf("  %-26s %10.2f\n", "step", step_ms);
  std::printf("throughput: %.2f img/s, %.1f GFLOP/s (%.1f GFLOP per step, 2 FLOP per multiply-add)\n",
              1000.0 * o.batch / step_ms, flops / (step_ms * 1e6), flops / 1e9);
  if (o.fold_bn) {  // the exported graph's forward: main head only, then BN folded too
    std::printf("the exported graph's forward on %s (main head only; deploy/graph_executor.h):\n",
                device.str().c_str());
    for (bool fold : {false, true}) {
      const double ms = time_graph_forward(student, images, fold, o.warmup, o.iterations);
      std::printf("  %-26s %10.2f %6.1f%%  %.2f img/s\n", fold ? "BN folded into the convs" : "BN kept", ms,
                  100 * ms / step_ms, 1000.0 * o.batch / ms);
    }
  }
  for (size_t r = 0; r < profile_rounds.size(); ++r) {
    if (profile_rounds[r] == 0) print_op_table(profiles[r], o.iterations, profiled_ms[r] / o.iterations);
    else print_layer_table(profiles[r], o.iterations, profiled_ms[r] / o.iterations, o.top_layers);
  }
  return 0;
}

}  // namespace rdd::train
