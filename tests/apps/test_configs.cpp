// configs/: every preset parses with the command its header names (`rdd train` or `rdd distill
// --config FILE`), every key is an option of that command (CLI11 ignores unknown config keys, so a typo
// would silently fall back to a default), the values resolve to the documented recipe and pass the
// trainer's validation, command-line flags win over the file, and configs/README.md lists every preset.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "apps/config_file.h"
#include "apps/run_flags.h"
#include "train/trainer.h"
#include "data/synth.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::apps;
using namespace rdd::train;

namespace {

namespace fs = std::filesystem;

RunOptions parse_preset(const std::string& path, bool distill, std::vector<std::string> extra = {}) {
  CLI::App app{"configs test"};
  RunOptions o;
  CLI::App* sub = app.add_subcommand(distill ? "distill" : "train");
  add_run_flags(sub, o, distill);  // includes --config (add_config_file_option)
  std::vector<std::string> args = {distill ? "distill" : "train", "--config", path};
  args.insert(args.end(), extra.begin(), extra.end());
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last-first
  app.parse(args);
  return o;
}

// The option names (without dashes) a command accepts.
std::vector<std::string> option_names(bool distill) {
  CLI::App app{"configs test"};
  RunOptions o;
  CLI::App* sub = app.add_subcommand(distill ? "distill" : "train");
  add_run_flags(sub, o, distill);
  std::vector<std::string> names;
  for (const CLI::Option* opt : sub->get_options())
    for (const std::string& n : opt->get_lnames()) names.push_back(n);
  return names;
}

struct Preset {
  std::string command;                 // from the header's "Run:   rdd <command> --config <file>" line
  std::vector<std::string> keys;       // every `key = value` line
  std::string header;                  // the leading comment block
};

Preset read_preset(const std::string& path, const std::string& rel) {
  std::ifstream f(path);
  REQUIRE_MESSAGE(f.good(), path);
  Preset p;
  bool in_header = true;
  const std::regex run_line("^# Run: +rdd (train|distill) --config configs/" + rel + "( |$)");
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') {
      if (in_header && !line.empty()) p.header += line + "\n";
      std::smatch m;
      if (std::regex_search(line, m, run_line)) p.command = m[1];
      if (line.empty()) in_header = false;
      continue;
    }
    in_header = false;
    const size_t eq = line.find('=');
    REQUIRE_MESSAGE(eq != std::string::npos, rel, ": not a `key = value` line: ", line);
    std::string key = line.substr(0, eq);
    key.erase(key.find_last_not_of(' ') + 1);
    p.keys.push_back(key);
  }
  return p;
}

// The documented recipe of each preset (configs/README.md and the files' headers).
struct Expected {
  std::string model, dataset, val_split, preset;
  int crop_h, crop_w, batch;
  int64_t iters;
  double lr, weight_decay;
  std::string teacher;  // distill only
  double kd;
  std::string rdd;
  int64_t warmup_iters;
  double width = 1.0, teacher_width = 1.0;
  bool imagenet_init = true;
};

const std::map<std::string, Expected>& expected_presets() {
  const std::string r101 = "deeplabv3_resnet101", r50 = "deeplabv3_resnet50", r18 = "deeplabv3_resnet18", psp = "psp_resnet18",
                    mbv2 = "deeplabv3_mobilenetv2";
  static const std::map<std::string, Expected> e = {
      {"cityscapes/teacher_dlv3_r101.ini", {r101, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, "", 0, "", 4000}},
      {"cityscapes/baseline_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, "", 0, "", 4000}},
      {"cityscapes/baseline_psp_r18.ini", {psp, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, "", 0, "", 4000}},
      {"cityscapes/baseline_dlv3_mbv2.ini", {mbv2, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, "", 0, "", 4000}},
      {"cityscapes/kd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "", 4000}},
      {"cityscapes/kd_psp_r18.ini", {psp, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "", 4000}},
      {"cityscapes/kd_dlv3_mbv2.ini", {mbv2, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "", 4000}},
      {"cityscapes/rdd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "tfe,tse", 4000}},
      {"cityscapes/rdd_psp_r18.ini", {psp, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "tfe,tse", 4000}},
      {"cityscapes/rdd_dlv3_mbv2.ini", {mbv2, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "tfe,tse", 4000}},
      // Table 1's other columns and Table 8's rows (the comparison methods; their terms: method_checks()).
      {"cityscapes/skd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "", 4000}},
      {"cityscapes/ifvd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "", 4000}},
      {"cityscapes/cwd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "", 4000}},
      {"cityscapes/cirkd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "", 4000}},
      {"cityscapes/cirkd_rdd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "tfe,tse", 4000}},
      {"cityscapes/at_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "", 4000}},
      {"cityscapes/at_rdd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 1, "tfe,tse", 4000}},
      {"cityscapes/dsd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 0, "", 4000}},
      {"cityscapes/dsd_rdd_dlv3_r18.ini", {r18, "cityscapes", "val", "cirkd", 512, 1024, 16, 40000, 0.02, 1e-4, r101, 0, "tfe,tse", 4000}},
      {"camvid/rdd_dlv3_r18.ini", {r18, "camvid", "test", "cirkd", 360, 360, 16, 40000, 0.02, 1e-4, r101, 1, "tfe,tse", 4000}},
      {"voc/rdd_dlv3_r18.ini", {r18, "voc", "val", "cirkd", 512, 512, 16, 40000, 0.02, 1e-4, r101, 1, "tfe,tse", 4000}},
      {"ade20k/rdd_dlv3_r18.ini", {r18, "ade20k", "val", "cirkd", 512, 512, 16, 80000, 0.02, 1e-4, r101, 1, "tfe,tse", 8000}},
      {"cityscapes/mmseg_teacher_dlv3_r101.ini", {r101, "cityscapes", "val", "mmseg", 512, 1024, 8, 80000, 0.01, 5e-4, "", 0, "", 4000}},
      {"cityscapes/mmseg_baseline_dlv3_r18.ini", {r18, "cityscapes", "val", "mmseg", 512, 1024, 8, 80000, 0.01, 5e-4, "", 0, "", 4000}},
      {"cityscapes/mmseg_rdd_dlv3_r18.ini", {r18, "cityscapes", "val", "mmseg", 512, 1024, 8, 80000, 0.01, 5e-4, r101, 1, "tfe,tse", 8000}},
      // The demo (scripts/demo.sh's GPU scale): random initialisation, small widths.
      {"synthetic/teacher.ini", {r50, "cityscapes", "val", "cirkd", 256, 512, 16, 3000, 0.02, 1e-4, "", 0, "", 200, 0.5, 1.0, false}},
      {"synthetic/baseline.ini", {r18, "cityscapes", "val", "cirkd", 256, 512, 16, 2000, 0.02, 1e-4, "", 0, "", 200, 0.25, 1.0, false}},
      {"synthetic/kd.ini", {r18, "cityscapes", "val", "cirkd", 256, 512, 16, 2000, 0.02, 1e-4, r50, 1, "", 200, 0.25, 0.5, false}},
      {"synthetic/rdd.ini", {r18, "cityscapes", "val", "cirkd", 256, 512, 16, 2000, 0.02, 1e-4, r50, 1, "tfe,tse", 200, 0.25, 0.5, false}},
  };
  return e;
}

// The comparison methods' weights in each preset (the released scripts'); every other method stays off.
struct Methods {
  double cwd = 0, cwd_feature = 0, at = 0, skd = 0, ifvd = 0, dsd = 0, cirkd = 0, adv = 0;
};
Methods method_checks(const std::string& rel) {
  static const std::map<std::string, Methods> m = {
      {"cityscapes/skd_dlv3_r18.ini", {.skd = 10, .adv = 0.001}},
      {"cityscapes/ifvd_dlv3_r18.ini", {.ifvd = 20, .adv = 0.001}},
      {"cityscapes/cwd_dlv3_r18.ini", {.cwd = 3, .cwd_feature = 50, .adv = 0.001}},
      {"cityscapes/cirkd_dlv3_r18.ini", {.cirkd = 1}},
      {"cityscapes/cirkd_rdd_dlv3_r18.ini", {.cirkd = 1}},
      {"cityscapes/at_dlv3_r18.ini", {.at = 10000}},
      {"cityscapes/at_rdd_dlv3_r18.ini", {.at = 10000}},
      {"cityscapes/dsd_dlv3_r18.ini", {.dsd = 1}},
      {"cityscapes/dsd_rdd_dlv3_r18.ini", {.dsd = 1}},
  };
  const auto it = m.find(rel);
  return it == m.end() ? Methods{} : it->second;
}

std::vector<std::string> preset_files() {
  std::vector<std::string> files;
  const fs::path root = test::source_path("configs");
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().extension() == ".ini") files.push_back(fs::relative(e.path(), root).string());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("configs/: every preset parses with its command, uses only real options, resolves to its recipe") {
  const std::vector<std::string> files = preset_files();
  REQUIRE(files.size() == expected_presets().size());
  const std::vector<std::string> train_names = option_names(false), distill_names = option_names(true);
  for (const std::string& rel : files) {
    CAPTURE(rel);
    const std::string path = test::source_path("configs/" + rel);
    const Preset p = read_preset(path, rel);
    REQUIRE_MESSAGE((p.command == "train" || p.command == "distill"), rel, ": no `# Run:   rdd train|distill --config ",
                    "configs/", rel, "` line in the header");
    const bool says_what = p.header.find("Reproduces") != std::string::npos ||
                           p.header.find("reports none") != std::string::npos || p.header.find("Demo") != std::string::npos;
    CHECK_MESSAGE(says_what, rel, ": the header does not say what the preset reproduces");
    const bool distill = p.command == "distill";
    const std::vector<std::string>& names = distill ? distill_names : train_names;
    for (const std::string& k : p.keys)
      CHECK_MESSAGE(std::find(names.begin(), names.end(), k) != names.end(), rel, ": '", k, "' is not an option of rdd ",
                    p.command);
    std::vector<std::string> sorted = p.keys;
    std::sort(sorted.begin(), sorted.end());
    CHECK_MESSAGE(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(), rel, ": a key is set twice");

    const RunOptions o = parse_preset(path, distill);
    CHECK_NOTHROW(validate_run_options(o, distill));
    // The published schedule and loss constants (rdd-method.md 2.1).
    CHECK(o.sgd.momentum == 0.9);
    CHECK(o.power == 0.9);
    CHECK(o.loss.rdd.aux_weight == 0.4);
    auto it = expected_presets().find(rel);
    REQUIRE_MESSAGE(it != expected_presets().end(), rel, ": add its recipe to expected_presets()");
    const Expected& e = it->second;
    CHECK(o.model.name == e.model);
    CHECK(o.model.width == e.width);
    CHECK(o.data.kind == e.dataset);
    CHECK(o.data.split == "train");
    CHECK(o.val_split == e.val_split);
    CHECK(o.preset == e.preset);
    CHECK(o.crop_h == e.crop_h);
    CHECK(o.crop_w == e.crop_w);
    CHECK(o.batch == e.batch);
    CHECK(o.iters == e.iters);
    CHECK(o.lr == e.lr);
    CHECK(o.sgd.weight_decay == e.weight_decay);
    CHECK(o.init.empty() == !e.imagenet_init);  // ImageNet initialisation, as published
    CHECK(o.non_strict == e.imagenet_init);
    CHECK(o.out.rfind("runs/", 0) == 0);
    CHECK(distill == !e.teacher.empty());
    if (!distill) continue;
    CHECK(o.teacher.name == e.teacher);
    CHECK(o.teacher.width == e.teacher_width);
    CHECK_FALSE(o.teacher_weights.empty());
    const LossOptions& l = o.loss;
    CHECK(l.kd == e.kd);
    CHECK(l.kd_temperature == 1.0);
    CHECK(l.rdd_stages == e.rdd);
    const Methods want = method_checks(rel);
    CHECK(l.cwd == want.cwd);
    CHECK(l.cwd_feature == want.cwd_feature);
    CHECK(l.at == want.at);
    CHECK(l.skd == want.skd);
    CHECK(l.ifvd == want.ifvd);
    CHECK(l.dsd == want.dsd);
    CHECK(l.cirkd == want.cirkd);
    CHECK(l.adv == want.adv);
    CHECK(l.fitnet == 0.0);
    CHECK(l.dist == 0.0);
    if (want.cwd > 0 || want.cwd_feature > 0) CHECK(l.cwd_temperature == 4.0);
    if (want.adv > 0) {
      CHECK(l.adv_d == 0.1);
      CHECK(l.adv_lr == 4e-4);
      CHECK(l.adv_width == 64);
    }
    if (want.dsd > 0) {
      CHECK(l.dsd_psd == 1000.0);
      CHECK(l.dsd_csd == 10.0);
      CHECK(l.dsd_temperature == 4.0);
    }
    if (want.cirkd > 0) {
      CHECK(l.cirkd_minibatch == 1.0);
      CHECK(l.cirkd_pixel == 0.1);
      CHECK(l.cirkd_region == 0.1);
      CHECK(l.cirkd_pixel_memory == 20000);
      CHECK(l.cirkd_region_memory == 2000);
      CHECK(l.cirkd_pixel_contrast == 4096);
      CHECK(l.cirkd_region_contrast == 1024);
      CHECK(l.cirkd_temperature == 0.1);
      CHECK(l.cirkd_pixel_queue == "released");
    }
    if (e.rdd.empty()) continue;
    CHECK(l.rdd.warmup_iters == e.warmup_iters);
    CHECK(l.rdd.warmup_iters * 10 == o.iters);  // TFE for the paper's 10% of training
    CHECK_FALSE(l.rdd.soft_switch);
    CHECK(l.rdd.tfe.direction == method::TfeDirection::aux_main);  // --tfe-direction released
    CHECK(l.rdd.tse.mode == method::TseMode::xor_mode);
    CHECK(l.rdd.tse.thresh == 0.7);
    CHECK(l.rdd.tse.min_kept == 100000);
    CHECK(l.tse_class_weights == "auto");
  }
  // Every documented recipe has its file.
  for (const auto& [rel, e] : expected_presets())
    CHECK_MESSAGE(std::find(files.begin(), files.end(), rel) != files.end(), "configs/", rel, " is missing");
}

TEST_CASE("configs/: command-line flags win over the preset; a preset for distill is not a train config") {
  const std::string rdd18 = test::source_path("configs/cityscapes/rdd_dlv3_r18.ini");
  const RunOptions o = parse_preset(rdd18, true, {"--iters", "100", "--data-root", "/data/cs", "--batch", "8",
                                                  "--min-kept", "400000"});
  CHECK(o.iters == 100);
  CHECK(o.data.root == "/data/cs");
  CHECK(o.batch == 8);
  CHECK(o.loss.rdd.tse.min_kept == 400000);
  CHECK(o.lr == 0.02);  // still from the file
  CHECK(o.loss.rdd_stages == "tfe,tse");
  // The teacher keys are not options of `rdd train`: the key check above is what catches such a mix-up,
  // because CLI11 ignores unknown config keys.
  const std::vector<std::string> train_names = option_names(false);
  CHECK(std::find(train_names.begin(), train_names.end(), "teacher-weights") == train_names.end());
  CHECK(std::find(train_names.begin(), train_names.end(), "crop-w") != train_names.end());
}

TEST_CASE("--tf32: off unless given; in the run configuration only when on (older checkpoints still resume)") {
  const std::string rdd18 = test::source_path("configs/cityscapes/rdd_dlv3_r18.ini");
  const RunOptions off = parse_preset(rdd18, true);
  CHECK_FALSE(off.tf32);
  CHECK_FALSE(off.to_json(true).contains("tf32"));
  const RunOptions on = parse_preset(rdd18, true, {"--tf32"});
  CHECK(on.tf32);
  CHECK(on.to_json(true).at("tf32") == true);
}

TEST_CASE("configs/README.md lists every preset") {
  std::ifstream f(test::source_path("configs/README.md"));
  REQUIRE(f.good());
  const std::string readme((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (const std::string& rel : preset_files())
    CHECK_MESSAGE(readme.find(rel) != std::string::npos, "configs/README.md does not mention ", rel);
}

TEST_CASE("add_config_file_option: unknown keys, sections, bad values and missing files are errors naming the file") {
  const std::string dir = test::temp_dir("config_file");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  };
  const std::string base = "dataset = \"cityscapes\"\ndata-root = \"/data\"\n";
  // Flags from the file (true and false), quoted and bare values, inline comments.
  const RunOptions o = parse_preset(
      write("ok.ini", base + "; INI comment\nnon-strict = true\ncache = false\nlr = 0.5  # inline\nmodel = psp_resnet18\n"),
      false);
  CHECK(o.non_strict);
  CHECK_FALSE(o.cache);
  CHECK(o.lr == 0.5);
  CHECK(o.model.name == "psp_resnet18");
  CHECK(o.data.root == "/data");
  // A flag on the command line and `false` in the file: the command line wins.
  CHECK(parse_preset(write("flag.ini", base + "non-strict = false\n"), false, {"--non-strict"}).non_strict);

  auto fails_with = [&](const std::string& path, const std::string& what, bool distill = false) {
    try {
      parse_preset(path, distill);
      FAIL("no error for ", path);
    } catch (const CLI::ParseError& e) {
      const std::string msg = e.what();
      CHECK_MESSAGE(msg.find(path) != std::string::npos, msg);
      CHECK_MESSAGE(msg.find(what) != std::string::npos, msg);
    }
  };
  fails_with(write("typo.ini", base + "lrr = 0.1\n"), "'lrr' is not an option of `rdd train`");
  fails_with(write("teacher.ini", base + "teacher-weights = \"t.safetensors\"\n"), "'teacher-weights' is not an option");
  fails_with(write("section.ini", "[train]\n" + base), "sections");
  fails_with(write("twice.ini", base + "lr = 0.1\niters = 5\nlr = 0.2\n"), "'lr' is set twice");
  fails_with(write("twice2.ini", base + "lr = 0.1\nlr = 0.2\n"), "'lr'");  // merged by the reader: 2 values
  fails_with(write("badvalue.ini", "dataset = kitti\ndata-root = /data\n"), "'dataset'");
  fails_with(write("notanumber.ini", base + "iters = many\n"), "'iters'");
  fails_with(dir + "/missing.ini", "no such file");
  // A binary file (a checkpoint given by mistake) is named as such, its bytes not echoed.
  fails_with(write("binary.ini", std::string("\x08\x00\x00\x00{\"__metadata__\"", 19)), "not a text config file");
  // Required options still required when neither the file nor the command line gives them.
  CHECK_THROWS_AS(parse_preset(write("noroot.ini", "dataset = cityscapes\n"), false), CLI::RequiredError);
}

TEST_CASE("configs/synthetic: the demo presets run (teacher, then KD + RDD from it), scaled down by flags") {
  const std::string dir = test::temp_dir("configs_run");
  data::SynthOptions so;
  so.out = dir + "/synth";
  so.train = 4;
  so.val = 2;
  so.height = 48;
  so.width = 64;
  data::write_synthetic_cityscapes(so);
  const std::vector<std::string> small = {"--data-root", so.out, "--iters", "2", "--crop", "32", "--crop-w", "48",
                                          "--batch", "2", "--workers", "1", "--device", "cpu", "--val-every", "0"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), small.begin(), small.end());
    return more;
  };
  const RunOptions t = parse_preset(test::source_path("configs/synthetic/teacher.ini"), false,
                                    with({"--out", dir + "/teacher"}));
  CHECK(t.model.name == "deeplabv3_resnet50");
  const TrainResult tr = run_training(t, false);
  CHECK(tr.iterations == 2);
  const RunOptions r = parse_preset(test::source_path("configs/synthetic/rdd.ini"), true,
                                    with({"--out", dir + "/rdd", "--teacher-weights", dir + "/teacher/weights.safetensors",
                                          "--warmup-iters", "2", "--min-kept", "100"}));
  const TrainResult rr = run_training(r, true);
  CHECK(rr.iterations == 2);
  std::ifstream metrics(dir + "/rdd/metrics.jsonl");
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(metrics, line);) records.push_back(nlohmann::json::parse(line));
  REQUIRE(records.size() >= 2);
  CHECK(records[0].contains("kd"));
  CHECK(records[0]["task.tfe_share"] == 1.0);  // TFE while iteration < --warmup-iters (counted from 1)
  CHECK(records[1]["task.tfe_share"] == 0.0);  // TSE from then on
}
