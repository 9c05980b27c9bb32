#include "train/trainer.h"

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/augment.h"
#include "data/dataset_check.h"
#include "data/loader.h"
#include "engine/cudnn_graph.h"
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
  StepModels m;
  m.student = models::build_model(opt.model.name, {num_classes, opt.model.width});
  m.student->params().materialize(device);
  m.student->init_weights(opt.seed);
  if (!opt.init.empty()) {
    const models::WeightsReport r = models::load_weights(m.student->params(), opt.init, !opt.non_strict);
    std::fprintf(stderr, "init: %s\n", r.summary().c_str());
  }
  m.sgd = std::make_unique<Sgd>(m.student->params(), opt.sgd);
  // `rdd train` has the task term alone, with its aux weight.
  LossOptions loss;
  loss.rdd.aux_weight = opt.loss.rdd.aux_weight;
  if (distill) {
    loss = opt.loss;
    // Teacher (frozen, eval mode: no activations kept, never updated).
    m.teacher = models::build_model(opt.teacher.name, {num_classes, opt.teacher.width});
    m.teacher->params().materialize(device, /*with_grads=*/false);  // frozen: forward only
    load_model_weights(*m.teacher, opt.teacher_weights, "--teacher-weights", "--teacher", "--teacher-width");
    m.teacher->set_mode(layers::Mode::eval);
    const std::string& stages = loss.rdd_stages;
    RDD_CHECK(m.teacher->has_aux() || stages.empty() || (stages == "tse" && !m.student->has_aux()), "--teacher ",
              opt.teacher.name, " has no aux head, which RDD's TFE stage (and TSE's aux pair) needs");
  }
  // The class weights on the training device once, not uploaded by every CE call.
  const Tensor weights = loss.rdd_stages.empty() ? Tensor() : tse_class_weights(loss.tse_class_weights, dataset, device);
  m.distiller = make_distiller(loss, opt.iters, weights);
  return m;
}

method::LossTerms run_step(StepModels& m, const RunOptions& opt, int64_t it, const Tensor& images,
                           const Tensor& labels, dist::OverlappedGradReducer* grad_reducer) {
  const StepAt at{.iteration = it, .iterations = opt.iters, .lr = poly_lr(opt.lr, it, opt.iters, opt.power),
                  .seed = opt.seed};
  return train_step(m, at, images, labels, grad_reducer);
}

TrainResult run_training(const RunOptions& opt, bool distill, dist::Communicator* comm, const std::string& device_override) {
  validate_run_options(opt, distill);
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

  nlohmann::json config = opt.to_json(distill);
  if (distill) config["teacher_weights_file"] = file_fingerprint(opt.teacher_weights);
  if (!opt.init.empty()) config["init_file"] = file_fingerprint(opt.init);
  auto refuse_differences = [&](const std::vector<std::string>& diffs) {
    if (diffs.empty()) return;
    std::string msg;
    for (const auto& d : diffs) msg += "\n  " + d;
    fail("--resume ", opt.resume, " comes from a different run configuration:", msg);
  };
  if (!opt.resume.empty()) {  // refused before the data check when anything but the data differs
    const CheckpointInfo info = read_checkpoint_info(opt.resume);
    refuse_differences(resume_differences(info.config, config, /*with_data_identity=*/false));
    RDD_CHECK(info.iteration < opt.iters, "--resume ", opt.resume, ": the run already finished (", info.iteration,
              " of ", opt.iters, " iterations)");
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
  config["train_data"] = data::dataset_identity(*train_ds);
  if (val_ds) config["val_data"] = data::dataset_identity(*val_ds);
  if (writer) {
    nlohmann::json resolved = config;
    resolved["world_size"] = world;
    resolved["device"] = device.str();
    write_text_atomically(opt.out + "/config.json", resolved.dump(2) + "\n");
  }

  StepModels m = make_run_models(opt, distill, train_ds->num_classes, train_ds->name, device);
  models::SegModel& student = *m.student;

  int64_t start = 0;
  double best_miou = -1;
  if (!opt.resume.empty()) {
    const CheckpointInfo info = load_checkpoint(opt.resume, student.params(), *m.sgd);
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
  }
  // Gradient averaging overlapped with the backward: each 25 MiB bucket of the flat gradient buffer
  // is all-reduced as soon as the backward has passed it (nothing moves for one rank).
  dist::OverlappedGradReducer grad_reducer(*comm, student.params(),
                                           dist::make_grad_buckets(student.params(), size_t(25) << 20));
  if (data_parallel) student.set_grad_ready_hook([&grad_reducer](int64_t flat_begin) { grad_reducer.ready(flat_begin); });

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
    save_checkpoint(result.checkpoint, student.params(), *m.sgd, info);
  };
  auto validate = [&](int64_t it) {
    EvalResult r = evaluate(student, val_ds, opt.preset, device, opt.workers, false, comm);
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

  data::Batch batch;
  std::map<std::string, int64_t> zero_runs;  // weighted loss terms exactly 0 so many iterations in a row
  const int64_t last = opt.stop_after > 0 ? opt.stop_after : opt.iters;
  RDD_CHECK(last > start, "--stop-after ", opt.stop_after, " is not after the resumed iteration ", start);
  int64_t done = start;
  int stop_signal = 0;
  for (int64_t it = start + 1; it <= last; ++it) {
    try {
      RDD_CHECK(loader.next(batch), "the training loader ended early at iteration ", it);
    } catch (const Error& e) {  // a sample the data check could not see as bad (changed since, or its pixels)
      if (writer) progress.finish();
      if (it - 1 > saved_at) save(it - 1);
      if (!writer || saved_at == 0) throw;
      fail(e.what(), "\nthe run stopped at iteration ", it - 1, " with its checkpoint in ", opt.out,
           "/checkpoint.safetensors: fix the file and continue with --resume ", opt.out, "/checkpoint.safetensors");
    }
    const Tensor images = device.is_cpu() ? batch.images : batch.images.to(device);
    const Tensor labels = device.is_cpu() ? batch.labels : batch.labels.to(device);
    const method::LossTerms terms = run_step(m, opt, it, images, labels, &grad_reducer);
    loader.recycle(std::move(batch));  // waits for the batch's upload (free today: the losses synced)
    done = it;

    // Loss terms averaged over ranks for logging, and whether any rank was asked to stop.
    std::vector<double> values{terms.total()};
    for (const method::LossTerm& t : terms.terms) values.push_back(t.value);
    values.push_back(stop_requested() ? 1.0 : 0.0);
    if (data_parallel) {
      Tensor v = Tensor::from_vector(values, {int64_t(values.size())}).to(device);  // NCCL reduces device memory
      comm->all_reduce_mean(v);
      values = v.to_vector<double>();
      comm->throw_if_failed();  // an abort by the NCCL watchdog would leave garbage in v
    }
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
      const double miou = validate(it).confusion.mean_iou();
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

  if (writer) save_model_weights(student, opt.out + "/weights.safetensors", weights_metadata(opt, *train_ds));
  if (!val_ds) {  // a list dataset without --val-list
    result.validated = false;
    if (writer) std::fprintf(stderr, "no validation: --dataset list without --val-list\n");
    return result;
  }
  EvalResult final_eval = validate(opt.iters);
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
