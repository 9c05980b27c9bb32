// The whole trainer (run_training) on 2 in-process ranks, on the CPU: what only a multi-rank run exercises
// — rank 0 alone writes, every iteration is logged once, validation covers every image once over the
// ranks, and a checkpoint resumes on another number of ranks (issue: "resume works for any world size that
// divides the global batch").
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "apps/run_flags.h"
#include <csignal>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/synth.h"
#include "dist/communicator.h"
#include "engine/safetensors.h"
#include "harness.h"
#include "train/checkpoint.h"
#include "train/signals.h"
#include "train/trainer.h"

using namespace rdd;
using namespace rdd::apps;
using namespace rdd::dist;
using namespace rdd::train;

namespace {

RunOptions parse(std::vector<std::string> args, bool distill = false) {
  CLI::App app{"trainer ranks test"};
  RunOptions o;
  CLI::App* sub = app.add_subcommand(distill ? "distill" : "train");
  add_run_flags(sub, o, distill);
  args.insert(args.begin(), distill ? "distill" : "train");
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last-first
  app.parse(args);
  return o;
}

// run_training on `world` in-process ranks (one thread each); returns rank 0's result. `errors_out` (optional)
// receives each rank's error instead of the check that there is none.
TrainResult train_on_ranks(const RunOptions& o, int world, bool distill = false,
                           std::vector<std::string>* errors_out = nullptr) {
  if (world == 1 && !errors_out) return run_training(o, distill);
  LocalGroup group(world);
  std::vector<TrainResult> results(static_cast<size_t>(world));
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      std::unique_ptr<Communicator> comm = group.rank(r);
      try {
        results[size_t(r)] = run_training(o, distill, comm.get());
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (std::thread& t : threads) t.join();
  if (errors_out) {
    *errors_out = errors;
    return results[0];
  }
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r << ": " << errors[size_t(r)]);
    CHECK(errors[size_t(r)].empty());
  }
  return results[0];
}

// Synthetic Cityscapes-layout scenes of 48×64 under dir/synth; returns that data root.
std::string small_synth(const std::string& dir, int train, int val) {
  data::SynthOptions so;
  so.out = dir + "/synth";
  so.train = train;
  so.val = val;
  so.height = 48;
  so.width = 64;
  data::write_synthetic_cityscapes(so);
  return so.out;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream f(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("the trainer on 2 ranks: rank 0 writes, each iteration logged once, a 2-rank checkpoint resumes on 1 "
          "rank and a 1-rank one on 2") {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("trainer_ranks");
  // 3 validation images: odd, so the ranks' shards differ in size; the summed confusion matrix covers all 3.
  const std::string root = small_synth(dir, 8, 3);
  const std::vector<std::string> base = {"--dataset", "cityscapes", "--data-root", root, "--model",
                                         "deeplabv3_resnet18", "--width", "0.125", "--crop", "32", "--crop-w", "48",
                                         "--batch", "4", "--iters", "4", "--save-every", "2", "--workers", "1",
                                         "--device", "cpu", "--print-every", "1000", "--val-every", "2"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), base.begin(), base.end());
    return more;
  };

  // 2 ranks, stopped after iteration 2 (a checkpoint), then resumed on 1 rank to the end.
  const TrainResult first = train_on_ranks(parse(with({"--out", dir + "/a", "--stop-after", "2"})), 2);
  CHECK_FALSE(first.finished);
  CHECK(first.iterations == 2);
  REQUIRE(fs::exists(dir + "/a/checkpoint.safetensors"));
  const TrainResult resumed =
      train_on_ranks(parse(with({"--out", dir + "/a", "--resume", dir + "/a/checkpoint.safetensors"})), 1);
  CHECK(resumed.finished);
  CHECK(resumed.iterations == 2);  // 3 and 4
  CHECK(resumed.final_miou >= 0);

  // 1 rank to iteration 2, resumed on 2 ranks.
  train_on_ranks(parse(with({"--out", dir + "/b", "--stop-after", "2"})), 1);
  const TrainResult two = train_on_ranks(parse(with({"--out", dir + "/b", "--resume", dir + "/b/checkpoint.safetensors"})), 2);
  CHECK(two.finished);
  CHECK(two.iterations == 2);

  for (const std::string run : {"a", "b"}) {
    INFO("run " << run);
    // One record per iteration (rank 1 wrote nothing), and the validations at 2 and at the end.
    const std::vector<nlohmann::json> records = read_jsonl(dir + "/" + run + "/metrics.jsonl");
    std::vector<int64_t> iters;
    int validations = 0;
    for (const nlohmann::json& r : records) {
      if (r.contains("loss")) iters.push_back(r.at("iter").get<int64_t>());
      if (r.contains("val_miou")) ++validations;
    }
    CHECK(iters == std::vector<int64_t>{1, 2, 3, 4});
    CHECK(validations >= 2);
    // The final evaluation saw every validation image exactly once over the ranks.
    std::ifstream eval_file(dir + "/" + run + "/eval.json");
    REQUIRE(eval_file.good());
    const nlohmann::json eval = nlohmann::json::parse(eval_file);
    CHECK(eval.at("images").get<int64_t>() == 3);
    CHECK(fs::exists(dir + "/" + run + "/weights.safetensors"));
  }
  // The resolved configuration records the world size of the run that wrote it.
  std::ifstream config(dir + "/b/config.json");
  REQUIRE(config.good());
  CHECK(nlohmann::json::parse(config).at("world_size") == 2);
}

TEST_CASE("distillation on 2 ranks: the frozen teacher on every rank, KD and RDD (TFE, then TSE) logged once") {
  const std::string dir = test::temp_dir("distill_ranks");
  const std::string root = small_synth(dir, 8, 2);
  const std::vector<std::string> data = {"--dataset", "cityscapes", "--data-root", root, "--crop", "32",
                                         "--crop-w", "48", "--batch", "4", "--workers", "1", "--device", "cpu",
                                         "--print-every", "1000"};
  std::vector<std::string> teacher = data;
  for (const char* a : {"--model", "deeplabv3_resnet18", "--width", "0.25", "--iters", "2", "--out"}) teacher.push_back(a);
  teacher.push_back(dir + "/teacher");
  train_on_ranks(parse(teacher), 1);
  std::vector<std::string> student = data;
  for (const char* a : {"--model", "deeplabv3_resnet18", "--width", "0.125", "--teacher", "deeplabv3_resnet18",
                        "--teacher-width", "0.25", "--kd", "1", "--rdd", "tfe,tse", "--warmup-iters", "3",
                        "--min-kept", "200", "--iters", "4", "--out"})
    student.push_back(a);
  student.push_back(dir + "/rdd");
  student.push_back("--teacher-weights");
  student.push_back(dir + "/teacher/weights.safetensors");
  const TrainResult r = train_on_ranks(parse(student, true), 2, true);
  CHECK(r.finished);
  CHECK(r.iterations == 4);
  std::vector<double> tfe_share;
  for (const nlohmann::json& rec : read_jsonl(dir + "/rdd/metrics.jsonl"))
    if (rec.contains("loss")) {
      CHECK(rec.contains("kd"));
      tfe_share.push_back(rec.at("task.tfe_share").get<double>());
    }
  CHECK(tfe_share == std::vector<double>{1, 1, 0, 0});  // TFE while iteration < 3, then TSE
}

TEST_CASE("comparison KD methods on 2 ranks through the trainer: every term logged once per iteration, their "
          "parameters and optimizer state in rank 0's checkpoint") {
  // (That N ranks train what one rank trains with the whole batch is tests/train/test_kd_ranks.cpp.)
  const std::string dir = test::temp_dir("kd_methods_ranks");
  const std::string root = small_synth(dir, 8, 2);
  const std::vector<std::string> data = {"--dataset", "cityscapes", "--data-root", root, "--crop", "32",
                                         "--crop-w", "48", "--batch", "4", "--workers", "1", "--device", "cpu",
                                         "--print-every", "1000", "--seed", "3"};
  std::vector<std::string> teacher = data;
  for (const char* a : {"--model", "deeplabv3_resnet18", "--width", "0.25", "--iters", "2", "--out"}) teacher.push_back(a);
  teacher.push_back(dir + "/teacher");
  train_on_ranks(parse(teacher), 1);
  std::vector<std::string> s = data;
  for (const char* a : {"--model", "deeplabv3_resnet18", "--width", "0.125", "--teacher", "deeplabv3_resnet18",
                        "--teacher-width", "0.25", "--iters", "3", "--fitnet", "1", "--cwd-feature", "1", "--at", "100",
                        "--skd", "1", "--ifvd", "10", "--dsd", "1", "--dist", "1", "--cirkd", "1",
                        "--cirkd-pixel-memory", "32", "--cirkd-region-memory", "8", "--rdd", "tfe,tse",
                        "--warmup-iters", "2", "--min-kept", "200", "--out"})
    s.push_back(a);
  s.push_back(dir + "/kd");
  s.push_back("--teacher-weights");
  s.push_back(dir + "/teacher/weights.safetensors");
  const TrainResult r = train_on_ranks(parse(s, true), 2, true);
  CHECK(r.finished);
  int logged = 0;
  for (const nlohmann::json& rec : read_jsonl(dir + "/kd/metrics.jsonl")) {
    if (!rec.contains("loss")) continue;
    ++logged;
    for (const char* term : {"fitnet", "cwd_feature", "at", "skd", "ifvd", "psd", "csd", "dist", "dist_aux",
                             "cirkd_minibatch", "cirkd_pixel", "cirkd_region", "ms.fitnet", "share.dsd", "ms.cirkd"}) {
      INFO(term);
      CHECK(rec.contains(term));
    }
  }
  CHECK(logged == 3);
  const SafetensorsFile ck = read_safetensors(dir + "/kd/checkpoint.safetensors");
  CHECK(ck.tensors.count("distill.fitnet.conv.weight"));
  CHECK(ck.tensors.count("distill.cwd_feature.conv.weight"));
  CHECK(ck.tensors.count("optim.distill_momentum"));
  CHECK(ck.tensors.count("distill.cirkd.teacher_pixel_queue"));
  CHECK(ck.tensors.count("distill.cirkd.pixel_queue_ptr"));
}

TEST_CASE("2 ranks and bad data: both stop before the first step, or both leave out the same sample") {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("trainer_ranks_bad");
  const std::string root = small_synth(dir, 8, 2);
  std::vector<fs::path> images;
  for (const auto& e : fs::recursive_directory_iterator(root + "/leftImg8bit/train")) images.push_back(e.path());
  std::sort(images.begin(), images.end());
  images.erase(std::remove_if(images.begin(), images.end(), [](const fs::path& p) { return p.extension() != ".png"; }),
               images.end());
  REQUIRE(images.size() == 8);
  fs::resize_file(images[2], 100);  // truncated
  const std::vector<std::string> base = {"--dataset", "cityscapes", "--data-root", root, "--model", "deeplabv3_resnet18",
                                         "--width", "0.125", "--crop", "32", "--crop-w", "48", "--batch", "2", "--iters",
                                         "2", "--workers", "1", "--device", "cpu", "--print-every", "1000"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), base.begin(), base.end());
    return more;
  };
  std::vector<std::string> errors;
  train_on_ranks(parse(with({"--out", dir + "/stopped"})), 2, false, &errors);
  CHECK(errors[0].find(images[2].string() + ": truncated PNG") != std::string::npos);
  CHECK(errors[1].find("the data check on rank 0 failed") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/stopped/checkpoint.safetensors"));

  const TrainResult r = train_on_ranks(parse(with({"--out", dir + "/skipped", "--skip-bad-samples"})), 2);
  CHECK(r.finished);
  std::ifstream config(dir + "/skipped/config.json");
  REQUIRE(config.good());
  CHECK(nlohmann::json::parse(config).at("train_data").at("samples") == 7);
}

TEST_CASE("2 ranks and a sample that fails to load mid-run on rank 1: both ranks stop before the same step, rank 0 "
          "writes the last step's checkpoint, and the fixed file resumes") {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("trainer_ranks_mid_run");
  const std::string root = small_synth(dir, 8, 2);
  // The sample rank 1 reads for iteration 3 (one sample per rank and step): its pixel data made undecodable
  // behind a sound PNG header, so the data check passes and the loader finds it.
  const data::Dataset ds = data::open_dataset({"cityscapes", root, "train"});
  const data::SampleOrder rank1(ds.size(), /*seed=*/1, /*rank=*/1, /*world=*/2, /*shuffle=*/true);
  const std::string bad = ds.files[rank1.index(2)].image;
  const data::SampleOrder rank0(ds.size(), 1, 0, 2, true);
  for (int64_t k = 0; k < 3; ++k) REQUIRE(ds.files[rank0.index(k)].image != bad);
  std::string png;
  {
    std::ifstream f(bad, std::ios::binary);
    png.assign(std::istreambuf_iterator<char>(f), {});
  }
  const std::string good_png = png;
  const size_t idat = png.find("IDAT");
  REQUIRE(idat != std::string::npos);
  REQUIRE(png.size() > idat + 8);
  png[idat + 4] = png[idat + 5] = 0;  // the zlib stream's header: no longer deflate
  auto write_file = [](const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  };
  write_file(bad, png);

  const std::vector<std::string> args = {"--dataset", "cityscapes", "--data-root", root, "--model", "deeplabv3_resnet18",
                                         "--width", "0.125", "--crop", "32", "--crop-w", "48", "--batch", "2", "--iters",
                                         "6", "--save-every", "1000", "--seed", "1", "--workers", "1", "--device", "cpu",
                                         "--print-every", "1000", "--out", dir + "/run"};
  std::vector<std::string> errors;
  train_on_ranks(parse(args), 2, false, &errors);
  INFO("rank 0: " << errors[0]);
  INFO("rank 1: " << errors[1]);
  CHECK(errors[1].find(bad) != std::string::npos);  // the rank that read it names the file
  CHECK(errors[0].find("a training sample of another rank could not be read for iteration 3") != std::string::npos);
  for (const std::string& e : errors)
    CHECK(e.find("the run stopped at iteration 2 with its checkpoint in " + dir + "/run/checkpoint.safetensors") !=
          std::string::npos);
  const std::string checkpoint = dir + "/run/checkpoint.safetensors";
  REQUIRE(fs::exists(checkpoint));
  CHECK(read_checkpoint_info(checkpoint).iteration == 2);
  CHECK_FALSE(fs::exists(dir + "/run/rdd.lock"));
  int64_t logged = 0;
  for (const nlohmann::json& rec : read_jsonl(dir + "/run/metrics.jsonl")) logged += rec.contains("loss");
  CHECK(logged == 2);

  // Fixed, the run continues from the checkpoint to the end.
  write_file(bad, good_png);
  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  resume.push_back(checkpoint);
  const TrainResult rest = train_on_ranks(parse(resume), 2);
  CHECK(rest.finished);
  CHECK(rest.iterations == 4);
}

TEST_CASE("2 ranks and a stop request: during the data check it ends the run; later both ranks stop after the "
          "same step with one checkpoint, and resume") {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("trainer_ranks_stop");
  const std::string root = small_synth(dir, 8, 2);
  const std::vector<std::string> args = {"--dataset", "cityscapes", "--data-root", root, "--model", "deeplabv3_resnet18",
                                         "--width", "0.125", "--crop", "32", "--crop-w", "48", "--batch", "2", "--iters",
                                         "60", "--save-every", "1000", "--workers", "1", "--device", "cpu",
                                         "--print-every", "1000", "--out", dir + "/run"};
  // Requested before the first step (as the signal handler does: every rank of this process sees it).
  request_stop(SIGTERM);
  std::vector<std::string> errors;
  train_on_ranks(parse(args), 2, false, &errors);
  clear_stop();
  CHECK(errors[0].find("the data check was interrupted") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/run/checkpoint.safetensors"));

  // Requested once training runs.
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    while (!done) {
      std::error_code ec;
      if (fs::file_size(dir + "/run/metrics.jsonl", ec) > 0 && !ec) {
        request_stop(SIGTERM);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  const TrainResult stopped = train_on_ranks(parse(args), 2);
  done = true;
  stopper.join();
  clear_stop();
  CHECK(stopped.stopped_by_signal == SIGTERM);
  CHECK_FALSE(stopped.finished);
  CHECK(stopped.iterations >= 1);
  CHECK(stopped.iterations < 60);
  CHECK(stopped.checkpoint == dir + "/run/checkpoint.safetensors");
  REQUIRE(fs::exists(stopped.checkpoint));
  CHECK_FALSE(fs::exists(dir + "/run/rdd.lock"));
  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  resume.push_back(stopped.checkpoint);
  const TrainResult rest = train_on_ranks(parse(resume), 2);
  CHECK(rest.finished);
  CHECK(rest.iterations == 60 - stopped.iterations);
  int64_t logged = 0;
  for (const nlohmann::json& rec : read_jsonl(dir + "/run/metrics.jsonl")) logged += rec.contains("loss");
  CHECK(logged == 60);
}
