#include "train/trainer.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/augment.h"
#include "data/dataset_check.h"
#include "data/loader.h"
#include "engine/cudnn_graph.h"
#include "engine/rng.h"
#include "models/weights_io.h"
#include "train/checkpoint.h"
#include "train/data_gate.h"
#include "train/evaluate.h"
#include "train/metrics_log.h"
#include "train/model_weights.h"
#include "train/progress.h"
#include "train/resolve_device.h"
#include "train/run_folder.h"
#include "train/run_identity.h"
#include "train/signals.h"
#include "train/tensorboard.h"
#include "train/val_images.h"

namespace rdd::train {

namespace fs = std::filesystem;

namespace {

// A run killed after its last checkpoint logged iterations that the resumed run repeats: keep only the
// records up to the checkpoint's iteration, so metrics.jsonl has each iteration once.
void truncate_metrics_after(const std::string& path, int64_t iteration) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (j.contains("iter") && j["iter"].get<int64_t>() > iteration) continue;
    } catch (const std::exception&) {
      continue;  // a line torn by the kill
    }
    kept += line + "\n";
  }
  in.close();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << kept;
    RDD_CHECK(out.good(), "cannot write ", tmp);
  }
  fs::rename(tmp, path);
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << text;
    RDD_CHECK(f.good(), "cannot write ", tmp);
  }
  fs::rename(tmp, path);
}

// What a weights file records beside model, width and classes: what eval, predict and export read back.
std::map<std::string, std::string> weights_metadata(const RunOptions& opt, const data::Dataset& ds) {
  return {{"preset", opt.preset}, {"dataset", ds.name}};
}

std::string zero_loss_warning(const std::string& term, int64_t it, int64_t n, bool distill) {
  std::string m = "warning: the loss term '" + term + "' has been exactly 0 for " + std::to_string(n) +
                  " iterations in a row (to iteration " + std::to_string(it) + "): it gives no gradient";
  if (distill && term == "task")
    m += "; with RDD's TSE stage this means no pixel was selected (a teacher too weak to disagree with the "
         "student, or --tse-thresh / --tse-mode selecting nothing)";
  return m;
}

}  // namespace

StepModels make_run_models(const RunOptions& opt, bool distill, int num_classes, const std::string& dataset,
                           Device device) {
  const auto init_student = [&opt](models::SegModel& student) {
    student.init_weights(opt.seed);
    if (!opt.init.empty()) {
      const models::WeightsReport r = models::load_weights(student.params(), opt.init, !opt.non_strict);
      std::fprintf(stderr, "init: %s\n", r.summary().c_str());
    }
  };
  const auto load_teacher = [&opt](models::SegModel& teacher) {
    load_model_weights(teacher, opt.teacher_weights, "--teacher-weights", "--teacher", "--teacher-width");
  };
  return make_run_models(opt, distill, num_classes, dataset, device, init_student, load_teacher);
}

StepModels make_run_models(const RunOptions& opt, bool distill, int num_classes, const std::string& dataset,
                           Device device, const ModelFill& fill_student, const ModelFill& fill_teacher) {
  StepModels m;
  m.student = models::build_model(opt.model.name, {num_classes, opt.model.width});
  m.student->params().materialize(device);
  fill_student(*m.student);
  m.sgd = std::make_unique<Sgd>(m.student->params(), opt.sgd);
  // `rdd train` has the task term alone, with its aux weight.
  LossOptions loss;
  loss.rdd.aux_weight = opt.loss.rdd.aux_weight;
  if (distill) {
    loss = opt.loss;
    // Teacher (frozen, eval mode: no activations kept, never updated).
    m.teacher = models::build_model(opt.teacher.name, {num_classes, opt.teacher.width});
    m.teacher->params().materialize(device, /*with_grads=*/false);  // frozen: forward only
    fill_teacher(*m.teacher);
    m.teacher->set_mode(layers::Mode::eval);
    const std::string& stages = loss.rdd_stages;
    RDD_CHECK(m.teacher->has_aux() || stages.empty() || (stages == "tse" && !m.student->has_aux()), "--teacher ",
              opt.teacher.name, " has no aux head, which RDD's TFE stage (and TSE's aux pair) needs");
  }
  // The class weights on the training device once, not uploaded by every CE call.
  const Tensor weights = loss.rdd_stages.empty() ? Tensor() : tse_class_weights(loss.tse_class_weights, dataset, device);
  DistillShapes shapes;
  shapes.num_classes = num_classes;
  shapes.student_feature_channels = m.student->feature_channels();
  if (m.teacher) shapes.teacher_feature_channels = m.teacher->feature_channels();
  m.distiller = make_distiller(loss, opt.iters, weights, shapes, device, opt.seed);
  if (m.distiller->has_parameters()) m.distill_sgd = std::make_unique<Sgd>(m.distiller->params(), opt.sgd);
  return m;
}

method::LossTerms run_step(StepModels& m, const RunOptions& opt, int64_t it, const Tensor& images,
                           const Tensor& labels, dist::OverlappedGradReducer* grad_reducer) {
  const StepAt at{.iteration = it, .iterations = opt.iters, .lr = poly_lr(opt.lr, it, opt.iters, opt.power),
                  .seed = opt.seed};
  return train_step(m, at, images, labels, grad_reducer);
}

namespace {

// Everything a training step changes: the calibration runs steps and puts it all back.
struct StepState {
  std::vector<Tensor> tensors;  // (live view, saved copy) pairs, flattened
  std::map<std::string, Tensor> extra;
};

StepState snapshot(StepModels& m) {
  StepState s;
  auto keep = [&](const Tensor& t) {
    if (!t.defined()) return;
    s.tensors.push_back(t);
    s.tensors.push_back(t.clone());
  };
  keep(m.student->params().flat_values());
  for (Param* b : m.student->params().buffers()) keep(b->value);
  keep(m.sgd->momentum_buffer());
  if (m.distiller->params().materialized()) {
    keep(m.distiller->params().flat_values());
    for (Param* b : m.distiller->params().buffers()) keep(b->value);
  }
  if (m.distill_sgd) keep(m.distill_sgd->momentum_buffer());
  for (const auto& [name, t] : m.distiller->extra_state()) s.extra[name] = t.clone();
  return s;
}

void restore(StepModels& m, const StepState& s) {
  for (size_t i = 0; i + 1 < s.tensors.size(); i += 2) {
    Tensor live = s.tensors[i];
    live.copy_from(s.tensors[i + 1]);
  }
  m.distiller->load_extra_state(s.extra);
  m.sgd->set_steps(0);
  if (m.distill_sgd) m.distill_sgd->set_steps(0);
}

// Seconds per training step on random data of the run's shapes: one warm-up step, then `steps` timed; the
// models, optimizers and the terms' state restored afterwards. Every rank runs it (the data-parallel
// collectives take part); rank 0's measurement is everybody's.
double calibrate_step_seconds(StepModels& m, const RunOptions& opt, int local_batch, int num_classes, Device device,
                              dist::Communicator& comm, dist::OverlappedGradReducer* reducer, int steps) {
  const StepState saved = snapshot(m);
  Tensor images = Tensor::empty({local_batch, 3, opt.crop_h, opt.crop_w});
  fill_normal(images, 0, 50, opt.seed, 0xB0D6E7ull);
  Tensor labels = Tensor::empty({local_batch, opt.crop_h, opt.crop_w}, DType::i32);
  fill_randint(labels, 0, num_classes, opt.seed, 0xB0D6E8ull);
  images = images.to(device);
  labels = labels.to(device);
  auto step = [&](int64_t it) {
    train_step(m, {.iteration = it, .iterations = std::max<int64_t>(opt.iters, steps + 1), .lr = 0.0, .seed = opt.seed},
               images, labels, comm.data_parallel() ? reducer : nullptr);
  };
  step(1);
  synchronize(device);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step(2 + i);
  synchronize(device);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
  restore(m, saved);
  if (comm.data_parallel()) {
    Tensor t = Tensor::from_vector<double>({seconds}, {1}).to(device);
    comm.broadcast(t, 0);
    seconds = t.to_vector<double>()[0];
  }
  return seconds;
}

// GFLOP of one global step: the teacher's forward, the student's forward and backward (2 FLOP per
// multiply-add, backward ≈ 2 forwards), and the distillation terms' own counts, on every rank.
double step_gflop(StepModels& m, const RunOptions& opt, int local_batch, int world, int num_classes) {
  const Shape one{1, 3, opt.crop_h, opt.crop_w};
  const double student = double(m.student->trace(one).total_macs());
  const double teacher = m.teacher ? double(m.teacher->trace(one).total_macs()) : 0.0;
  method::OutputShapes s;
  s.n = local_batch;
  s.classes = num_classes;
  s.h = (opt.crop_h + 7) / 8;
  s.w = (opt.crop_w + 7) / 8;
  s.student_channels = m.student->feature_channels();
  s.teacher_channels = m.teacher ? m.teacher->feature_channels() : 0;
  s.label_h = opt.crop_h;
  s.label_w = opt.crop_w;
  s.student_aux = m.student->has_aux();
  const double per_rank = double(local_batch) * (2 * teacher + 6 * student) + m.distiller->step_flops(s);
  return per_rank * world / 1e9;
}

}  // namespace

TrainResult run_training(const RunOptions& opt_in, bool distill, dist::Communicator* comm,
                         const std::string& device_override) {
  validate_run_options(opt_in, distill);
  RunOptions opt = opt_in;  // a budget resolves opt.iters below
  const Device device = resolve_device(device_override.empty() ? opt.device : device_override);
  cudnn::set_allow_tf32(opt.tf32);
  dist::SoloCommunicator solo;
  if (!comm) comm = &solo;
  const int world = comm->world_size(), rank = comm->rank();
  const bool writer = rank == 0;  // only rank 0 writes files and prints progress
  RDD_CHECK(opt.batch % world == 0, "--batch ", opt.batch, " does not split over ", world, " ranks");
  StopSignals stop_signals;  // SIGINT/SIGTERM: finish the step, write a checkpoint, return

  // Data: the training split and the validation split of the same dataset (a list dataset: --val-list).
  auto train_ds = std::make_shared<data::Dataset>(data::open_dataset(opt.data));
  data::DatasetSpec val_spec = opt.data;
  val_spec.split = opt.val_split.empty() ? "val" : opt.val_split;
  if (opt.data.kind == "list") val_spec.root = opt.val_list;
  std::shared_ptr<data::Dataset> val_ds;
  if (!val_spec.root.empty()) val_ds = std::make_shared<data::Dataset>(data::open_dataset(val_spec));

  // The run folder: this run's alone (locked), not another run's unless --resume or --overwrite.
  RunFolder folder;
  if (writer) {
    folder = RunFolder(opt.out, !opt.resume.empty() ? RunFolderMode::resume
                                : opt.overwrite     ? RunFolderMode::overwrite
                                                    : RunFolderMode::fresh);
    for (const std::string& note : folder.notes()) std::fprintf(stderr, "%s: %s\n", opt.out.c_str(), note.c_str());
  }

  // A budgeted run resolved its iterations when it started: a resume takes them from the checkpoint, not
  // from a new calibration (so that the schedule, and the configuration compared below, stay the same).
  const bool budget = opt.budget_seconds > 0 || opt.budget_tflop > 0;
  CheckpointInfo resume_info;
  if (!opt.resume.empty()) {
    resume_info = read_checkpoint_info(opt.resume);
    if (budget) {
      const nlohmann::json& c = resume_info.config;
      RDD_CHECK(c.contains("iters"), "--resume ", opt.resume, ": the checkpoint's configuration has no iterations");
      opt.iters = c["iters"].get<int64_t>();
      if (c.contains("budget_step_seconds")) opt.budget_step_seconds = c["budget_step_seconds"].get<double>();
      if (c.contains("budget_step_gflop")) opt.budget_step_gflop = c["budget_step_gflop"].get<double>();
    }
  }

  // The run's configuration as config.json and every checkpoint record it: the options, the weight files
  // by content, and (once checked) the data by identity.
  nlohmann::json data_identity = nlohmann::json::object();
  auto run_config = [&] {
    nlohmann::json c = opt.to_json(distill);
    if (distill) c["teacher_weights_file"] = file_fingerprint(opt.teacher_weights);
    if (!opt.init.empty()) c["init_file"] = file_fingerprint(opt.init);
    c.update(data_identity);
    return c;
  };
  nlohmann::json config = run_config();
  auto refuse_differences = [&](const std::vector<std::string>& diffs) {
    if (diffs.empty()) return;
    std::string msg;
    for (const auto& d : diffs) msg += "\n  " + d;
    fail("--resume ", opt.resume, " comes from a different run configuration:", msg);
  };
  if (!opt.resume.empty()) {  // refused before the data check when anything but the data differs
    refuse_differences(resume_differences(resume_info.config, config, /*with_data_identity=*/false));
    RDD_CHECK(resume_info.iteration < opt.iters, "--resume ", opt.resume, ": the run already finished (",
              resume_info.iteration, " of ", opt.iters, " iterations)");
  }

  // Every sample checked before the first step (cached in --out: a resume does not pay again).
  DataGateOptions gate;
  gate.threads = opt.workers;
  gate.skip_bad = opt.skip_bad_samples;
  gate.cache_path = opt.out + "/data_check.json";
  gate.bad_list_path = opt.out + "/bad_samples.txt";
  gate.report = writer;
  if (writer) fs::remove(gate.bad_list_path);
  train_ds = check_run_data(train_ds, "training", gate, comm, device);
  if (val_ds) val_ds = check_run_data(val_ds, "validation", gate, comm, device);
  data_identity["train_data"] = data::dataset_identity(*train_ds);
  if (val_ds) data_identity["val_data"] = data::dataset_identity(*val_ds);
  config = run_config();

  StepModels m = make_run_models(opt, distill, train_ds->num_classes, train_ds->name, device);
  models::SegModel& student = *m.student;

  int64_t start = 0;
  double best_miou = -1;
  if (!opt.resume.empty()) {
    const CheckpointInfo info =
        load_checkpoint(opt.resume, student.params(), *m.sgd, {m.distiller.get(), m.distill_sgd.get()});
    refuse_differences(resume_differences(info.config, config));
    start = info.iteration;
    if (info.extra.count("best_miou")) best_miou = std::stod(info.extra.at("best_miou"));
    if (writer) std::fprintf(stderr, "resumed from %s at iteration %lld\n", opt.resume.c_str(), (long long)start);
  }
  const bool data_parallel = comm->data_parallel();
  if (data_parallel) {
    // Every rank starts from rank 0's weights and statistics (they are equal by construction; this makes
    // it so even if a file differed), and the student's BN becomes SyncBN.
    Tensor values = student.params().flat_values();
    comm->broadcast(values, 0);
    for (Param* b : student.params().buffers()) comm->broadcast(b->value, 0);
    Tensor momentum = m.sgd->momentum_buffer();
    comm->broadcast(momentum, 0);
    student.set_stats_reducer([comm](Tensor& partial_sums) { comm->all_reduce_sum(partial_sums); });
    // The distillation terms' parameters, buffers and optimizer likewise; terms that keep state across
    // ranks (SyncBN in a projection head, memory queues) get the communicator's sum.
    method::Distiller& d = *m.distiller;
    if (d.params().materialized()) {
      Tensor dv = d.params().flat_values();
      comm->broadcast(dv, 0);
      for (Param* b : d.params().buffers()) comm->broadcast(b->value, 0);
    }
    if (m.distill_sgd) {
      Tensor dm = m.distill_sgd->momentum_buffer();
      comm->broadcast(dm, 0);
    }
    d.set_ranks({rank, world, [comm](Tensor& t) { comm->all_reduce_sum(t); }});
    m.comm = comm;
  }
  // Gradient averaging overlapped with the backward: each 25 MiB bucket of the flat gradient buffer
  // is all-reduced as soon as the backward has passed it (nothing moves for one rank).
  dist::OverlappedGradReducer grad_reducer(*comm, student.params(),
                                           dist::make_grad_buckets(student.params(), size_t(25) << 20));
  if (data_parallel) student.set_grad_ready_hook([&grad_reducer](int64_t flat_begin) { grad_reducer.ready(flat_begin); });

  // An equal-compute budget becomes the run's iterations, once, before the schedule starts.
  if (budget && opt.resume.empty()) {
    const int num_classes = train_ds->num_classes;
    opt.budget_step_gflop = step_gflop(m, opt, opt.batch / world, world, num_classes);
    if (opt.budget_seconds > 0) {
      opt.budget_step_seconds = calibrate_step_seconds(m, opt, opt.batch / world, num_classes, device, *comm,
                                                       &grad_reducer, 3);
      opt.iters = int64_t(opt.budget_seconds / opt.budget_step_seconds);
    } else {
      opt.iters = int64_t(opt.budget_tflop * 1e3 / opt.budget_step_gflop);
    }
    RDD_CHECK(opt.iters >= 1, "the budget (", opt.budget_seconds > 0 ? opt.budget_seconds : opt.budget_tflop,
              opt.budget_seconds > 0 ? " s" : " TFLOP", ") does not fit one step (", opt.budget_step_seconds, " s, ",
              opt.budget_step_gflop, " GFLOP per step)");
    RDD_CHECK(opt.stop_after <= opt.iters, "--stop-after ", opt.stop_after, " is beyond the budget's ", opt.iters,
              " iterations");
    if (writer)
      std::fprintf(stderr, "budget: %g %s -> %lld iterations (%.4f s and %.2f GFLOP per step%s)\n",
                   opt.budget_seconds > 0 ? opt.budget_seconds : opt.budget_tflop,
                   opt.budget_seconds > 0 ? "s" : "TFLOP", (long long)opt.iters, opt.budget_step_seconds,
                   opt.budget_step_gflop, opt.budget_seconds > 0 ? ", timed" : "; seconds not measured");
  }
  config = run_config();  // with the iterations a budget resolved
  if (writer) {
    nlohmann::json resolved = config;
    resolved["world_size"] = world;
    resolved["device"] = device.str();
    write_text_atomically(opt.out + "/config.json", resolved.dump(2) + "\n");
  }

  data::LoaderConfig lc;
  lc.batch_size = opt.batch / world;
  lc.workers = opt.workers;
  lc.seed = opt.seed;
  lc.rank = rank;
  lc.world = world;
  lc.start_iteration = start;
  lc.max_iterations = opt.iters;
  lc.cache = opt.cache;
  lc.pinned = device.is_cuda();
  lc.device = device;
  data::Loader loader(train_ds, data::augment_preset(opt.preset, opt.crop_h, opt.crop_w, train_ds->name), lc);

  MetricsLog metrics;
  if (writer && start > 0) truncate_metrics_after(opt.out + "/metrics.jsonl", start);
  if (writer) metrics = MetricsLog(opt.out + "/metrics.jsonl", /*append=*/start > 0);
  std::unique_ptr<TensorBoardWriter> tb;
  if (writer && opt.tensorboard) {
    tb = std::make_unique<TensorBoardWriter>(opt.out + "/tb");
    if (start > 0) tb->session_start(start + 1);  // TensorBoard drops what a killed run logged after the checkpoint
  }
  Progress progress(opt.iters, start, distill ? "distill" : "train", opt.print_every);
  student.set_mode(layers::Mode::train);
  TrainResult result;
  int64_t saved_at = start;
  auto save = [&](int64_t it) {
    saved_at = it;
    if (!writer) return;
    CheckpointInfo info;
    info.iteration = it;
    info.model = student.name();
    info.config = config;
    if (best_miou >= 0) info.extra["best_miou"] = std::to_string(best_miou);
    result.checkpoint = opt.out + "/checkpoint.safetensors";
    save_checkpoint(result.checkpoint, student.params(), *m.sgd, info, {m.distiller.get(), m.distill_sgd.get()});
  };
  auto validate = [&](int64_t it) {
    EvalOptions eval_options;
    eval_options.stop_on_request = true;  // a pre-empted run stops within an image, not after the whole split
    EvalResult r = evaluate(student, val_ds, opt.preset, device, opt.workers, false, comm, eval_options);
    if (r.interrupted) {
      if (writer) progress.message("validation at " + std::to_string(it) + " interrupted by a stop request: not recorded");
      return r;
    }
    const double miou = r.confusion.mean_iou();
    if (!writer) return r;
    metrics.write({{"iter", it}, {"val_miou", miou}, {"val_pixel_accuracy", r.confusion.pixel_accuracy()}});
    if (tb) {
      tb->scalar("val/miou", it, miou);
      tb->scalar("val/pixel_accuracy", it, r.confusion.pixel_accuracy());
      const std::vector<data::Image> panels = validation_panels(student, *val_ds, opt.preset, device, 3);
      for (size_t k = 0; k < panels.size(); ++k)
        tb->image("val/image_truth_prediction_" + std::to_string(k), it, data::encode_png(panels[k], 6),
                  panels[k].height, panels[k].width, 3);
    }
    char line[128];
    std::snprintf(line, sizeof line, "validation at %lld: mIoU %.2f%%  pixel accuracy %.2f%%", (long long)it,
                  100 * miou, 100 * r.confusion.pixel_accuracy());
    progress.message(line);
    return r;
  };

  // A batch that does not load (a sample changed since the data check, or pixels that do not decode behind
  // a sound header) stops every rank before the same step, after rank 0 wrote the last step's checkpoint.
  // Each rank therefore fetches the next step's batch before the loss terms' all-reduce and adds to it
  // whether that failed; only the first batch needs a collective of its own.
  data::Batch batch;
  std::string data_error;  // this rank's loader error for the batch of the next step, if any
  auto fetch_batch = [&](int64_t it) {
    try {
      RDD_CHECK(loader.next(batch), "the training loader ended early at iteration ", it);
    } catch (const Error& e) {
      data_error = e.what();
    }
  };
  auto stop_for_bad_batch = [&](int64_t it) {
    if (writer) progress.finish();
    if (it - 1 > saved_at) save(it - 1);
    const std::string what = !data_error.empty() ? data_error
                                                 : "a training sample of another rank could not be read for iteration " +
                                                       std::to_string(it) + " (that rank's message names it)";
    if (saved_at == 0) fail(what);
    fail(what, "\nthe run stopped at iteration ", it - 1, " with its checkpoint in ", opt.out,
         "/checkpoint.safetensors: fix the file and continue with --resume ", opt.out, "/checkpoint.safetensors");
  };
  std::map<std::string, int64_t> zero_runs;  // weighted loss terms exactly 0 so many iterations in a row
  const int64_t last = opt.stop_after > 0 ? opt.stop_after : opt.iters;
  RDD_CHECK(last > start, "--stop-after ", opt.stop_after, " is not after the resumed iteration ", start);
  int64_t done = start;
  int stop_signal = 0;
  fetch_batch(start + 1);
  bool bad_batch = !data_error.empty();
  if (data_parallel) {
    Tensor flag = Tensor::from_vector(std::vector<double>{bad_batch ? 1.0 : 0.0}, {1}).to(device);
    comm->all_reduce_mean(flag);
    bad_batch = flag.to_vector<double>()[0] > 0;
    comm->throw_if_failed();
  }
  for (int64_t it = start + 1; it <= last; ++it) {
    if (bad_batch) stop_for_bad_batch(it);
    const Tensor images = device.is_cpu() ? batch.images : batch.images.to(device);
    const Tensor labels = device.is_cpu() ? batch.labels : batch.labels.to(device);
    const auto step_start = std::chrono::steady_clock::now();
    const method::LossTerms terms = run_step(m, opt, it, images, labels, &grad_reducer);
    const double step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - step_start).count();
    loader.recycle(std::move(batch));  // waits for the batch's upload (free today: the losses synced)
    done = it;
    if (it < last) fetch_batch(it + 1);

    // Loss terms averaged over ranks for logging, whether any rank was asked to stop, and whether any
    // rank's next batch failed to load.
    std::vector<double> values{terms.total()};
    for (const method::LossTerm& t : terms.terms) values.push_back(t.value);
    values.push_back(stop_requested() ? 1.0 : 0.0);
    values.push_back(data_error.empty() ? 0.0 : 1.0);
    if (data_parallel) {
      Tensor v = Tensor::from_vector(values, {int64_t(values.size())}).to(device);  // NCCL reduces device memory
      comm->all_reduce_mean(v);
      values = v.to_vector<double>();
      comm->throw_if_failed();  // an abort by the NCCL watchdog would leave garbage in v
    }
    bad_batch = values.back() > 0;
    values.pop_back();
    if (values.back() > 0) stop_signal = stop_requested() ? stop_requested() : SIGTERM;  // every rank stops here
    values.pop_back();
    if (writer) {
      const double lr = poly_lr(opt.lr, it, opt.iters, opt.power);
      std::map<std::string, double> shown{{"loss", values[0]}};
      nlohmann::json rec = {{"iter", it}, {"lr", lr}, {"loss", values[0]}};
      for (size_t k = 0; k < terms.terms.size(); ++k) {
        const method::LossTerm& t = terms.terms[k];
        rec[t.name] = values[k + 1];
        if (t.weight != 0 && t.name != "task") shown[t.name] = values[k + 1];
        if (t.weight != 0 && opt.warn_zero_loss > 0) {
          int64_t& run = zero_runs[t.name];
          run = values[k + 1] == 0 ? run + 1 : 0;
          if (run == opt.warn_zero_loss)
            progress.message(zero_loss_warning(t.name, it, opt.warn_zero_loss, distill));
        }
      }
      const double img_per_s = progress.images_per_second() * world;
      rec["img_per_s"] = img_per_s;
      // What each distillation term cost this step (rank 0's wall time; the losses end on the host, so it
      // is the device's time too) and its share of the whole step.
      rec["step_ms"] = step_ms;
      for (const auto& [name, ms] : m.distiller->last_term_ms()) {
        rec["ms." + name] = ms;
        rec["share." + name] = step_ms > 0 ? ms / step_ms : 0.0;
      }
      progress.update(it, shown, lr, images.size(0) * world);
      metrics.write(rec);
      if (tb) {
        tb->scalar("loss/total", it, values[0]);
        for (size_t k = 0; k < terms.terms.size(); ++k) tb->scalar("loss/" + terms.terms[k].name, it, values[k + 1]);
        tb->scalar("lr", it, lr);
        if (img_per_s > 0) tb->scalar("img_per_s", it, img_per_s);
      }
    }

    if (stop_signal) {  // asked to stop: this step's checkpoint, then out
      if (saved_at < it) save(it);
      break;
    }
    if (val_ds && opt.val_every > 0 && it % opt.val_every == 0 && it < opt.iters) {
      const EvalResult r = validate(it);
      if (r.interrupted) {  // every rank knows (evaluate's sum): stop here, as after a step
        stop_signal = stop_requested() ? stop_requested() : SIGTERM;
        if (saved_at < it) save(it);
        break;
      }
      const double miou = r.confusion.mean_iou();
      if (miou > best_miou) {
        best_miou = miou;
        if (writer) save_model_weights(student, opt.out + "/best.safetensors", weights_metadata(opt, *train_ds));
      }
      student.set_mode(layers::Mode::train);
    }
    if (it % opt.save_every == 0 || it == last) save(it);
  }
  if (writer) progress.finish();
  result.iterations = done - start;
  result.images_per_second = progress.images_per_second() * world;
  if (stop_signal) {  // the checkpoint is the result; the caller says how to continue
    result.finished = false;
    result.stopped_by_signal = stop_signal;
    return result;
  }
  if (last < opt.iters) {  // stopped early on purpose: the checkpoint is the result
    if (writer)
      std::fprintf(stderr, "stopped after iteration %lld of %lld; continue with --resume %s/checkpoint.safetensors\n",
                   (long long)last, (long long)opt.iters, opt.out.c_str());
    result.finished = false;
    return result;
  }

  if (writer) {
    result.weights = opt.out + "/weights.safetensors";
    save_model_weights(student, result.weights, weights_metadata(opt, *train_ds));
  }
  if (!val_ds) {  // a list dataset without --val-list
    result.validated = false;
    if (writer) std::fprintf(stderr, "no validation: --dataset list without --val-list\n");
    return result;
  }
  EvalResult final_eval = validate(opt.iters);
  if (final_eval.interrupted) {  // the weights are written; what is left is an `rdd eval` of them
    result.validated = false;
    result.stopped_by_signal = stop_requested() ? stop_requested() : SIGTERM;
    return result;
  }
  result.final_miou = final_eval.confusion.mean_iou();
  if (result.final_miou > best_miou) {
    best_miou = result.final_miou;
    if (opt.val_every > 0 && writer)
      save_model_weights(student, opt.out + "/best.safetensors", weights_metadata(opt, *train_ds));
  }
  result.best_miou = best_miou;
  if (!writer) return result;
  nlohmann::json ej = eval_json(final_eval, val_ds->class_names);
  ej["split"] = val_ds->split;
  ej["model"] = student.name();
  write_text_atomically(opt.out + "/eval.json", ej.dump(2) + "\n");
  std::fprintf(stderr, "%s", format_eval_table(final_eval, val_ds->class_names).c_str());
  return result;
}

}  // namespace rdd::train
