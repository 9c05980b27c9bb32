// `rdd train` (supervised) and `rdd distill` (teacher + KD/RDD/CWD): see train/trainer.h.
#include <cstdio>

#include "apps/commands.h"
#include "apps/flags.h"
#include "apps/run_flags.h"
#include "train/signals.h"
#include "train/trainer.h"

namespace rdd::apps {

namespace {

// The command line as the user typed it (the binary's path included, so that it can be pasted), with
// `--resume CHECKPOINT` in place of any --resume or --overwrite: what continues a stopped run.
std::string resume_command(const std::string& checkpoint) {
  std::vector<std::string> args = dist::own_command_line();
  std::string cmd;
  auto quoted = [](const std::string& a) {
    if (!a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
                          std::string::npos)
      return a;
    std::string q = "'";
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--resume") {
      ++i;
      continue;
    }
    if (a.rfind("--resume=", 0) == 0 || a == "--overwrite") continue;
    cmd += (cmd.empty() ? "" : " ") + quoted(a);
  }
  return cmd + " --resume " + quoted(checkpoint);
}

// What the user reads when a signal stopped the run: where the checkpoint is and how to continue (or,
// stopped in the final evaluation, where the weights are).
int report_stop(const train::TrainResult& r, bool distill) {
  if (r.finished) {
    std::fprintf(stderr, "%s: %lld iteration%s done; the final evaluation was stopped by %s. Weights in %s "
                         "(rdd eval --weights %s evaluates them)\n",
                 distill ? "distill" : "train", (long long)r.iterations, r.iterations == 1 ? "" : "s",
                 train::signal_name(r.stopped_by_signal).c_str(),
                 r.weights.c_str(), r.weights.c_str());
    return 128 + r.stopped_by_signal;
  }
  std::fprintf(stderr, "%s: stopped by %s after %lld iteration%s; checkpoint written to %s\ncontinue with:\n  %s\n",
               distill ? "distill" : "train", train::signal_name(r.stopped_by_signal).c_str(),
               (long long)r.iterations, r.iterations == 1 ? "" : "s", r.checkpoint.c_str(),
               resume_command(r.checkpoint).c_str());
  return 128 + r.stopped_by_signal;
}

// One process per GPU: the launcher re-runs this command line in --gpus workers; each worker joins the
// TCP rendezvous, gets rank 0's NCCL id, and trains its shard with an NCCL communicator.
int run_distributed_worker(const train::RunOptions& opt, bool distill, const dist::WorkerEnv& w,
                           const dist::LaunchOptions& launch) {
  dist::WorkerSession session = dist::join_worker_session(w, launch, "training");
  const train::TrainResult r = train::run_training(opt, distill, session.comm.get(), w.device);
  session.rendezvous->barrier();  // nobody exits (tearing down NCCL) while others still finish
  if (r.stopped_by_signal) return w.rank == 0 ? report_stop(r, distill) : 128 + r.stopped_by_signal;
  if (w.rank == 0)
    std::printf("%s: %lld iterations on %d GPUs, %.1f img/s, final mIoU %.2f%%, weights in %s/weights.safetensors\n",
                distill ? "distill" : "train", (long long)r.iterations, w.world_size, r.images_per_second,
                100 * r.final_miou, opt.out.c_str());
  return 0;
}

Command add_run_command(CLI::App& app, bool distill) {
  auto opt = std::make_shared<train::RunOptions>();
  auto launch = std::make_shared<dist::LaunchOptions>();
  CLI::App* sub =
      distill ? app.add_subcommand("distill",
                                   "Distill a student from a frozen teacher: logit KD (--kd), RDD (--rdd tfe,tse), "
                                   "CWD (--cwd), alone or combined")
              : app.add_subcommand("train", "Train a model with supervision (teachers, baselines): SGD, poly LR, aux loss");
  add_run_flags(sub, *opt, distill);
  add_launch_flags(*sub, *launch);
  sub->footer(distill ? "Example (the paper's RDD recipe):\n  rdd distill --config configs/cityscapes/rdd_dlv3_r18.ini\n"
                        "  rdd distill --dataset cityscapes --data-root DATA --teacher deeplabv3_resnet101 \\\n"
                        "      --teacher-weights teacher.safetensors --model deeplabv3_resnet18 --kd 1 --rdd tfe,tse \\\n"
                        "      --warmup-iters 4000 --out runs/rdd"
                      : "Example:\n  rdd train --dataset cityscapes --data-root DATA --model deeplabv3_resnet101 --out runs/teacher");
  return {sub, [opt, launch, distill] {
            if (const std::optional<dist::WorkerEnv> w = dist::worker_env())
              return run_distributed_worker(*opt, distill, *w, *launch);
            if (launch->distributed()) {
              train::validate_run_options(*opt, distill);  // refuse bad flags before starting N processes
              check_no_device_with_gpus(opt->device);
              return dist::launch_local_workers(launch->spec);
            }
            const train::TrainResult r = train::run_training(*opt, distill);
            if (r.stopped_by_signal) return report_stop(r, distill);
            if (!r.validated) {
              std::printf("%s: %lld iterations, %.1f img/s, not validated (no --val-list), weights in "
                          "%s/weights.safetensors\n",
                          distill ? "distill" : "train", (long long)r.iterations, r.images_per_second, opt->out.c_str());
              return 0;
            }
            if (!r.finished) {
              std::printf("%s: %lld iterations, %.1f img/s, stopped early; checkpoint in %s/checkpoint.safetensors\n",
                          distill ? "distill" : "train", (long long)r.iterations, r.images_per_second, opt->out.c_str());
              return 0;
            }
            std::printf("%s: %lld iterations, %.1f img/s, final mIoU %.2f%%, weights in %s/weights.safetensors\n",
                        distill ? "distill" : "train", (long long)r.iterations, r.images_per_second,
                        100 * r.final_miou, opt->out.c_str());
            return 0;
          }};
}
}  // namespace

Command add_train_command(CLI::App& app) { return add_run_command(app, false); }
Command add_distill_command(CLI::App& app) { return add_run_command(app, true); }

}  // namespace rdd::apps
