// `rdd selftest --golden`: run golden cases (see golden.h).
#include "train/golden.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "engine/error.h"
#include "models/golden.h"
#include "train/distiller.h"
#include "train/golden_kd.h"

namespace rdd::train {

const std::map<std::string, GoldenRunner>& golden_runners() {
  static const std::map<std::string, GoldenRunner> runners = {
      {"loss", run_golden_loss},
      {"kd_term", run_golden_kd_term},
      {"model", run_golden_model},
      {"train_steps", run_golden_train_steps},
  };
  return runners;
}

double golden_relative_error(const Tensor& got, const Tensor& expected) {
  RDD_CHECK(got.numel() == expected.numel(), "golden: output ", got.desc(), " does not match the expected ",
            expected.desc());
  const std::vector<double> g = got.to_vector<double>(), e = expected.to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) return std::numeric_limits<double>::infinity();
    diff += (g[i] - e[i]) * (g[i] - e[i]);
    norm += e[i] * e[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

GoldenOutput golden_compare(const std::string& name, const Tensor& got, const Tensor& expected, double rtol) {
  GoldenOutput o{name, golden_relative_error(got, expected), false};
  o.pass = o.error <= rtol;
  return o;
}

std::vector<std::string> golden_files(const std::string& file_or_dir) {
  namespace fs = std::filesystem;
  RDD_CHECK(fs::exists(file_or_dir), "--golden: '", file_or_dir, "' does not exist");
  if (!fs::is_directory(file_or_dir)) return {file_or_dir};
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(file_or_dir))
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  RDD_CHECK(!files.empty(), "--golden: no .safetensors files in '", file_or_dir, "'");
  return files;
}

int run_golden(const std::string& file_or_dir, double rtol, bool gpu, double envelope_factor) {
  RDD_CHECK(rtol > 0, "--rtol ", rtol, " must be positive");
  RDD_CHECK(envelope_factor >= 0, "--envelope-factor ", envelope_factor, " must not be negative");
  std::vector<Device> devices = {Device::cpu()};
  if (gpu) devices.push_back(Device::cuda(0));
  int failed = 0, total = 0;
  // The worst error/limit and error/envelope over the run, and where.
  struct Worst {
    double ratio = -1;
    std::string where;
    void see(double r, const std::string& w) {
      if (r > ratio) ratio = r, where = w;
    }
    std::string str() const { return ratio < 0 ? std::string("-") : fmt(ratio) + " (" + where + ")"; }
    static std::string fmt(double v) {
      char b[32];
      std::snprintf(b, sizeof b, "%.3g", v);
      return b;
    }
  } worst_limit, worst_envelope;
  std::printf("%-40s %-7s %-52s %10s %10s %9s  %s\n", "case", "device", "output", "error", "f32 env.", "limit",
              "result");
  for (const std::string& path : golden_files(file_or_dir)) {
    const std::string name = std::filesystem::path(path).stem().string();
    for (Device d : devices) {
      std::vector<GoldenOutput> outputs;
      std::string error;
      SafetensorsFile f;
      try {
        f = read_safetensors(path);
        const auto kind = f.metadata.find("kind");
        RDD_CHECK(kind != f.metadata.end(), path, ": no 'kind' in the metadata");
        const auto runner = golden_runners().find(kind->second);
        RDD_CHECK(runner != golden_runners().end(), path, ": unknown golden kind '", kind->second, "'");
        outputs = runner->second(f, path, d, rtol);
        RDD_CHECK(!outputs.empty(), path, ": the case has no expected outputs");
      } catch (const std::exception& e) {
        error = e.what();
      }
      if (!error.empty()) {
        ++total;
        ++failed;
        std::printf("%-40s %-7s %-52s %10s %10s %9.1e  FAIL\n    %s\n", name.c_str(), d.str().c_str(), "(case)", "-",
                    "-", rtol, error.c_str());
        continue;
      }
      Worst case_limit, case_envelope;
      int case_failed = 0;
      for (GoldenOutput& o : outputs) {
        ++total;
        const double envelope = models::golden_envelope(f, o.name);
        const double limit =
            o.tolerance > 0 ? o.tolerance : models::golden_limit(rtol, envelope_factor > 0 ? envelope : NAN, envelope_factor);
        o.pass = o.tolerance > 0 ? o.pass && o.error <= limit : o.error <= limit;
        if (!o.pass) ++failed, ++case_failed;
        char env[16] = "-";
        if (!std::isnan(envelope)) std::snprintf(env, sizeof env, "%10.3e", envelope);
        std::printf("%-40s %-7s %-52s %10.3e %10s %9.1e  %s\n", name.c_str(), d.str().c_str(), o.name.c_str(), o.error,
                    env, limit, o.pass ? "pass" : "FAIL");
        const std::string where = name + " " + d.str() + " " + o.name;
        case_limit.see(o.error / limit, o.name);
        worst_limit.see(o.error / limit, where);
        if (envelope > 0) {
          case_envelope.see(o.error / envelope, o.name);
          worst_envelope.see(o.error / envelope, where);
        }
      }
      std::printf("= %s %s: %zu outputs, %d failed; worst error/limit %s; worst error/f32 envelope %s\n", name.c_str(),
                  d.str().c_str(), outputs.size(), case_failed, case_limit.str().c_str(), case_envelope.str().c_str());
    }
  }
  std::printf("golden: %d outputs checked, %d passed, %d failed; worst error/limit %s; worst error/f32 envelope %s\n",
              total, total - failed, failed, worst_limit.str().c_str(), worst_envelope.str().c_str());
  return failed == 0 ? 0 : 1;
}

std::string CaseReader::meta(const std::string& key) const {
  const auto it = f.metadata.find(key);
  RDD_CHECK(it != f.metadata.end(), what, ": metadata '", key, "' is missing");
  return it->second;
}

double CaseReader::number(const std::string& key) const {
  const std::string v = meta(key);
  try {
    size_t used = 0;
    const double d = std::stod(v, &used);
    if (used == v.size()) return d;
  } catch (const std::exception&) {
  }
  fail(what, ": metadata '", key, "' = '", v, "' is not a number");
}

Tensor CaseReader::tensor(const std::string& name, Device d) const {
  const auto it = f.tensors.find(name);
  RDD_CHECK(it != f.tensors.end(), what, ": tensor '", name, "' is missing");
  return it->second.to(d);
}

std::vector<GoldenOutput> run_golden_loss(const SafetensorsFile& file, const std::string& what, Device device,
                                          double rtol) {
  using namespace rdd::method;
  const CaseReader r{file, what};
  NetOutputs s, t;
  s.main = r.tensor("golden.s_main", device);
  s.aux = r.optional("golden.s_aux", device);
  t.main = r.tensor("golden.t_main", device);
  t.aux = r.optional("golden.t_aux", device);
  const Tensor labels = r.tensor("golden.label", device);

  // The case as the options of a run: iteration 1 of a 1-iteration run, or the soft switch at metadata
  // `iteration` of `max_iterations`.
  LossOptions loss;
  StepInfo step{1, 1};
  const std::string stage = r.meta("stage");
  if (stage == "none") {
    loss.rdd_stages = "";
  } else if (stage == "tfe" || stage == "tse") {
    loss.rdd_stages = stage;
  } else if (stage == "blend") {
    loss.rdd_stages = "tfe,tse";
    loss.rdd.soft_switch = true;
    loss.rdd.warmup_iters = int64_t(r.number("warmup_iters"));
    step.iteration = int64_t(r.number("iteration"));
    step.max_iterations = int64_t(r.number("max_iterations"));
  } else {
    fail(what, ": stage '", stage, "' is not one of tfe, tse, none, blend");
  }
  loss.rdd.aux_weight = r.number("aux_weight");
  if (file.metadata.count("tfe_direction")) {
    const std::string dir = r.meta("tfe_direction");
    RDD_CHECK(dir == "aux_main" || dir == "main_aux", what, ": tfe_direction '", dir, "' is not aux_main or main_aux");
    loss.rdd.tfe.direction = dir == "aux_main" ? TfeDirection::aux_main : TfeDirection::main_aux;
  }
  loss.rdd.tse.mode = parse_tse_mode(r.meta("tse_mode"));
  loss.rdd.tse.thresh = r.number("thresh");
  loss.rdd.tse.min_kept = int64_t(r.number("min_kept"));
  loss.kd = r.number("kd_weight");
  loss.kd_temperature = r.number("temperature");
  loss.cwd = r.number("cwd_weight");
  loss.cwd_temperature = r.number("cwd_temperature");
  RDD_CHECK(loss.kd > 0 && loss.cwd >= 0, what, ": kd_weight ", loss.kd, " must be positive and cwd_weight ", loss.cwd,
            " not negative (the case compares the KD term, and the CWD term when its weight is positive)");
  const std::unique_ptr<Distiller> distiller =
      make_distiller(loss, step.max_iterations, r.optional("golden.class_weights", device));

  StudentGrads grads;
  const LossTerms terms = distiller->compute(step, s, t, labels, grads);
  const double cwd_weight = loss.cwd;
  auto scalar = [](double v) { return Tensor::from_vector<double>({v}, {1}); };
  std::vector<GoldenOutput> out;
  out.push_back(golden_compare("task", scalar(terms.value("task")), r.tensor("golden.expected.task", Device::cpu()), rtol));
  out.push_back(golden_compare("kd", scalar(terms.value("kd")), r.tensor("golden.expected.kd", Device::cpu()), rtol));
  if (cwd_weight != 0)
    out.push_back(golden_compare("cwd", scalar(terms.value("cwd")), r.tensor("golden.expected.cwd", Device::cpu()), rtol));
  out.push_back(golden_compare("total", scalar(terms.total()), r.tensor("golden.expected.total", Device::cpu()), rtol));
  auto grad_or_zero = [](const Tensor& g, const Tensor& like) {
    return g.defined() ? g : Tensor::zeros(like.shape(), DType::f32, like.device());
  };
  out.push_back(golden_compare("grad.s_main", grad_or_zero(grads.main, s.main),
                               r.tensor("golden.expected.grad.s_main", Device::cpu()), rtol));
  if (s.aux.defined())
    out.push_back(golden_compare("grad.s_aux", grad_or_zero(grads.aux, s.aux),
                                 r.tensor("golden.expected.grad.s_aux", Device::cpu()), rtol));
  return out;
}

std::vector<GoldenOutput> run_golden_model(const SafetensorsFile& file, const std::string& what, Device device,
                                           double rtol) {
  std::vector<GoldenOutput> out;
  for (const models::GoldenCheck& c : models::run_model_golden(file, device, rtol, what)) {
    RDD_CHECK(c.detail.empty(), what, ": ", c.what, ": ", c.detail);
    out.push_back({c.what, c.rel_error, c.pass});  // run_golden judges it by the rule
  }
  return out;
}

}  // namespace rdd::train
