#include "train/run_identity.h"

#include <fstream>

#include "engine/error.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::train;

namespace {

nlohmann::json config(const std::string& root, const std::string& files_hash, int samples = 12) {
  return {{"data_root", root},
          {"lr", 0.02},
          {"train_data", {{"name", "cityscapes"}, {"split", "train"}, {"samples", samples}, {"files_hash", files_hash}}}};
}

bool mentions(const std::vector<std::string>& diffs, const std::string& what) {
  for (const std::string& d : diffs)
    if (d.find(what) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("resume_differences: a moved dataset is the same dataset; other files or settings are not") {
  const nlohmann::json saved = config("/old/disk/cityscapes", "00aa");
  CHECK(resume_differences(saved, config("/new/disk/cityscapes", "00aa")).empty());
  const auto other_files = resume_differences(saved, config("/new/disk/cityscapes", "00bb"));
  CHECK(mentions(other_files, "train_data"));
  CHECK_FALSE(mentions(other_files, "data_root"));
  CHECK(mentions(resume_differences(saved, config("/old/disk/cityscapes", "00aa", 11)), "train_data"));
  nlohmann::json lr = config("/old/disk/cityscapes", "00aa");
  lr["lr"] = 0.05;
  CHECK(mentions(resume_differences(saved, lr), "lr: saved 0.02, now 0.05"));
  // Before the data check only what is known then is compared.
  CHECK(resume_differences(saved, config("/new/disk/cityscapes", "00bb"), /*with_data_identity=*/false).empty());
}

TEST_CASE("resume_differences: a checkpoint without the dataset's identity still compares the path") {
  nlohmann::json saved = config("/old/disk/cityscapes", "00aa");
  saved.erase("train_data");
  nlohmann::json now = config("/new/disk/cityscapes", "00aa");
  CHECK(mentions(resume_differences(saved, now), "data_root"));
}

TEST_CASE("file_fingerprint: size and content, not name") {
  const std::string dir = test::temp_dir("fingerprint");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream f(dir + "/" + name, std::ios::binary);
    f << text;
    return dir + "/" + name;
  };
  const std::string a = write("a.bin", "0123456789abcdefXYZ"), b = write("b.bin", "0123456789abcdefXYZ");
  const std::string c = write("c.bin", "0123456789abcdefXYz");
  CHECK(file_fingerprint(a) == file_fingerprint(b));
  CHECK(file_fingerprint(a)["bytes"] == 19);
  CHECK(file_fingerprint(a)["hash"] != file_fingerprint(c)["hash"]);
  CHECK(test::error_message([&] { file_fingerprint(dir + "/missing"); }).find("missing") != std::string::npos);
}
