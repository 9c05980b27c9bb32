// `rdd train` (supervised) and `rdd distill` (teacher + KD/RDD/CWD): see trainer.h.
#include <cstdio>

#include "apps/commands.h"
#include "apps/trainer.h"

namespace rdd::apps {

namespace {
Command add_run_command(CLI::App& app, bool distill) {
  auto opt = std::make_shared<RunOptions>();
  CLI::App* sub =
      distill ? app.add_subcommand("distill",
                                   "Distill a student from a frozen teacher: logit KD (--kd), RDD (--rdd tfe,tse), "
                                   "CWD (--cwd), alone or combined")
              : app.add_subcommand("train", "Train a model with supervision (teachers, baselines): SGD, poly LR, aux loss");
  add_run_options(sub, *opt, distill);
  sub->footer(distill ? "Example (the paper's RDD recipe):\n  rdd distill --config configs/cityscapes/rdd_dlv3_r18.ini\n"
                        "  rdd distill --dataset cityscapes --data-root DATA --teacher deeplabv3_resnet101 \\\n"
                        "      --teacher-weights teacher.safetensors --model deeplabv3_resnet18 --kd 1 --rdd tfe,tse \\\n"
                        "      --warmup-iters 4000 --out runs/rdd"
                      : "Example:\n  rdd train --dataset cityscapes --data-root DATA --model deeplabv3_resnet101 --out runs/teacher");
  return {sub, [opt, distill] {
            const TrainResult r = run_training(*opt, distill);
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
