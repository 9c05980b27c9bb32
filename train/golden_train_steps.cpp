// kind=train_steps golden cases (scripts/make_golden_train_steps.py): k iterations of the training loop
// from a saved student and teacher, through the trainer's own pieces: make_run_models (the student, the
// frozen eval-mode teacher, the distiller from the run's loss options, SGD) and run_step (train_step at
// the run's poly learning rate). No loader, no augmentation, no shuffling: batch i of the file is
// iteration i.
//
// Outputs and their limits (relative errors, models::golden_error; a tensor whose expected value is ~0 is
// measured against kGoldenFloor × the norm of its whole group):
//   student.<name>    every parameter after k steps            ≤ 2e-4 (group: all parameters)
//                     every BN running statistic               ≤ 1e-3 (group: all running statistics)
//                     num_batches_tracked                      exact
//   momentum.<name>   SGD's momentum buffer of every parameter ≤ 2e-2 (group: all momentum buffers)
//   loss.task.<i>, loss.kd.<i>   the terms of iteration i      ≤ 1e-5 (kd is 0 without KD)
// A correct float32 loop sits well inside them (PyTorch's float32 variants of the reference: ~10× inside,
// the case's golden.f32_err.* shows it per output); each mistake the generator's --perturb plants lands
// 8× or more outside in at least one output.
#include <cmath>

#include "engine/error.h"
#include "models/golden.h"
#include "models/weights_io.h"
#include "rdd/losses.h"
#include "train/golden.h"
#include "train/trainer.h"

namespace rdd::train {

namespace {

constexpr double kParamLimit = 2e-4, kStatsLimit = 1e-3, kMomentumLimit = 2e-2, kLossLimit = 1e-5;

// The tensors named prefix + <name>, as <name> → tensor.
std::map<std::string, Tensor> with_prefix(const SafetensorsFile& f, const std::string& prefix) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : f.tensors)
    if (name.compare(0, prefix.size(), prefix) == 0) out.emplace(name.substr(prefix.size()), t);
  return out;
}

// The case's metadata as the options of `rdd train` (teacher none) or `rdd distill`.
RunOptions case_run_options(const CaseReader& r) {
  RunOptions o;
  o.model = {r.meta("student"), r.number("student_width")};
  const std::string teacher = r.meta("teacher");
  if (teacher != "none") o.teacher = {teacher, r.number("teacher_width")};
  o.iters = int64_t(r.number("max_iterations"));
  o.lr = r.number("lr");
  o.power = r.number("power");
  o.sgd.momentum = r.number("momentum");
  o.sgd.weight_decay = r.number("weight_decay");
  o.seed = 0;
  LossOptions& loss = o.loss;
  const std::string rdd = r.meta("rdd");
  RDD_CHECK(rdd == "none" || rdd == "tfe,tse", r.what, ": rdd '", rdd, "' is not tfe,tse or none");
  loss.rdd_stages = rdd == "none" ? "" : rdd;
  loss.rdd.warmup_iters = int64_t(r.number("warmup_iters"));
  loss.rdd.aux_weight = r.number("aux_weight");
  loss.rdd.tse.mode = method::parse_tse_mode(r.meta("tse_mode"));
  loss.rdd.tse.thresh = r.number("thresh");
  loss.rdd.tse.min_kept = int64_t(r.number("min_kept"));
  loss.kd = r.number("kd_weight");
  loss.kd_temperature = r.number("kd_temperature");
  const std::string weights = r.meta("class_weights");
  RDD_CHECK(weights == "cityscapes" || weights == "none", r.what, ": class_weights '", weights,
            "' is not cityscapes or none");
  loss.tse_class_weights = weights == "cityscapes" ? "auto" : "none";  // auto: Cityscapes' for the cityscapes dataset
  RDD_CHECK(r.meta("dropout") == "0", r.what, ": dropout '", r.meta("dropout"), "': the cases run without dropout");
  return o;
}

GoldenOutput judged(const std::string& name, double error, double limit) {
  return {name, error, error <= limit, limit};
}

}  // namespace

std::vector<GoldenOutput> run_golden_train_steps(const SafetensorsFile& file, const std::string& what, Device device,
                                                 double /*rtol: fixed limits*/) {
  const CaseReader r{file, what};
  const RunOptions opt = case_run_options(r);
  const bool distill = !opt.teacher.name.empty();
  const int steps = int(r.number("steps"));
  RDD_CHECK(steps >= 1 && steps <= opt.iters, what, ": steps ", steps, " must be in [1, max_iterations ", opt.iters, "]");

  const std::map<std::string, Tensor> student_state = with_prefix(file, "golden.student.");
  const std::map<std::string, Tensor> teacher_state = with_prefix(file, "golden.teacher.");
  auto fill = [&what](const std::map<std::string, Tensor>& state, const char* whose) {
    return [&state, &what, whose](models::SegModel& m) {
      models::load_weights(m.params(), state, /*strict=*/true, what + " (" + whose + ")");
    };
  };
  StepModels m = make_run_models(opt, distill, int(r.number("num_classes")),
                                 r.meta("class_weights") == "cityscapes" ? "cityscapes" : "golden", device,
                                 fill(student_state, "golden.student.*"), fill(teacher_state, "golden.teacher.*"));
  models::SegModel& student = *m.student;
  student.set_mode(layers::Mode::train);
  student.set_dropout_enabled(false);

  std::vector<GoldenOutput> out;
  for (int i = 1; i <= steps; ++i) {
    const std::string b = "golden.batch." + std::to_string(i);
    const method::LossTerms terms = run_step(m, opt, i, r.tensor(b + ".image", device), r.tensor(b + ".label", device));
    auto term = [&](const char* name, const std::string& key) {
      const double got = terms.has(name) ? terms.value(name) : 0.0;
      const Tensor want = r.tensor("golden.expected.loss." + key + "." + std::to_string(i), Device::cpu());
      return judged("loss." + key + "." + std::to_string(i),
                    models::golden_error(Tensor::from_vector<double>({got}, {1}), want, 0), kLossLimit);
    };
    out.push_back(term("task", "task"));
    out.push_back(term("kd", "kd"));
  }

  // After the k steps: every parameter and buffer, every momentum buffer.
  ParamStore& store = student.params();
  const Tensor momentum = m.sgd->momentum_buffer();
  std::vector<Tensor> want_params, want_stats, want_momentum;
  for (Param* p : store.parameters()) {
    want_params.push_back(r.tensor("golden.expected.student." + p->name, Device::cpu()));
    want_momentum.push_back(r.tensor("golden.expected.momentum." + p->name, Device::cpu()));
  }
  for (Param* b : store.buffers())
    if (b->dtype != DType::i64) want_stats.push_back(r.tensor("golden.expected.student." + b->name, Device::cpu()));
  const double params_norm = models::golden_group_norm(want_params);
  const double stats_norm = models::golden_group_norm(want_stats);
  const double momentum_norm = models::golden_group_norm(want_momentum);
  size_t k = 0;
  for (Param* p : store.parameters()) {
    RDD_CHECK(want_params[k].shape() == p->shape, what, ": golden.expected.student.", p->name, " is ",
              want_params[k].desc(), ", the model's ", shape_str(p->shape));
    out.push_back(judged("student." + p->name, models::golden_error(p->value, want_params[k], params_norm), kParamLimit));
    const Tensor mom = momentum.slice(p->offset, p->offset + p->numel()).view(p->shape);
    out.push_back(
        judged("momentum." + p->name, models::golden_error(mom, want_momentum[k], momentum_norm), kMomentumLimit));
    ++k;
  }
  for (Param* b : store.buffers()) {
    const Tensor want = r.tensor("golden.expected.student." + b->name, Device::cpu());
    if (b->dtype == DType::i64) {  // num_batches_tracked: exact
      const bool same = b->value.to(Device::cpu()).to_vector<int64_t>() == want.to_vector<int64_t>();
      out.push_back(judged("student." + b->name, same ? 0.0 : INFINITY, kStatsLimit));
    } else {
      out.push_back(judged("student." + b->name, models::golden_error(b->value, want, stats_norm), kStatsLimit));
    }
  }
  return out;
}

}  // namespace rdd::train
