#include "data/dataset_check.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/image.h"
#include "engine/error.h"
#include "fixtures.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::data;
namespace fs = std::filesystem;

namespace {

// A list dataset of `n` 6×8 samples in `dir` (labels 0..3 of 5 classes); returns the list file.
std::string make_list_dataset(const fs::path& dir, int n) {
  test::mkdirs(dir / "img");
  test::mkdirs(dir / "lab");
  std::string list;
  for (int i = 0; i < n; ++i) {
    char buf[16];  // "s<i>.png" (snprintf: GCC 12's -Wrestrict misfires on "s" + std::to_string(i))
    std::snprintf(buf, sizeof buf, "s%d.png", i);
    const std::string name = buf;
    write_png((dir / "img" / name).string(), test::make_rgb(6, 8, uint64_t(i) + 1));
    write_png((dir / "lab" / name).string(), test::make_blocks(6, 8, {0, 1, 2, 3}, 2));
    list += "img/" + name + " lab/" + name + "\n";
  }
  test::write_text(dir / "list.txt", list);
  return (dir / "list.txt").string();
}

Dataset open_list(const std::string& list) { return open_dataset({"list", list, "train", 5, 255}); }

// The bytes of a PNG whose header says height × width (the pixels are a small image's: only the header
// is read before the size is refused).
std::vector<uint8_t> png_claiming(uint32_t height, uint32_t width) {
  std::vector<uint8_t> b = encode_png(test::make_rgb(4, 4, 7));
  for (int k = 0; k < 4; ++k) {
    b[16 + size_t(k)] = uint8_t(width >> (24 - 8 * k));
    b[20 + size_t(k)] = uint8_t(height >> (24 - 8 * k));
  }
  return b;
}

}  // namespace

TEST_CASE("image headers: size and format without decoding; a huge image is named as too large, not unknown") {
  const std::vector<uint8_t> png = encode_png(test::make_rgb(6, 8, 3));
  const ImageHeader h = parse_image_header(png.data(), png.size(), "a.png");
  CHECK(h.format == "PNG");
  CHECK(h.height == 6);
  CHECK(h.width == 8);
  CHECK(h.channels == 3);
  const std::vector<uint8_t> jpg = encode_jpeg(test::make_rgb(10, 14, 3));
  const ImageHeader j = parse_image_header(jpg.data(), jpg.size(), "a.jpg");
  CHECK(j.format == "JPEG");
  CHECK(j.height == 10);
  CHECK(j.width == 14);

  // 20000×20000 is a valid PNG that rdd does not decode: the message says so, with the size.
  const std::vector<uint8_t> huge = png_claiming(20000, 20000);
  const std::string header_msg = test::error_message([&] { parse_image_header(huge.data(), huge.size(), "huge.png"); });
  CHECK(header_msg.find("huge.png: image size 20000x20000 (HxW)") != std::string::npos);
  CHECK(header_msg.find("larger than rdd decodes") != std::string::npos);
  const std::string decode_msg = test::error_message([&] { decode_image(huge.data(), huge.size(), "huge.png"); });
  CHECK(decode_msg.find("larger than rdd decodes") != std::string::npos);
  CHECK(decode_msg.find("unknown image type") == std::string::npos);

  const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  CHECK(test::error_message([&] { parse_image_header(text.data(), text.size(), "t.png"); }).find("not a decodable") !=
        std::string::npos);
}

TEST_CASE("read_image_header finds a truncated PNG or JPEG by its missing end") {
  const fs::path dir = test::temp_dir("header_end");
  const std::vector<uint8_t> png = encode_png(test::make_rgb(16, 16, 4));
  write_file_bytes((dir / "ok.png").string(), png);
  CHECK(read_image_header((dir / "ok.png").string()).width == 16);
  write_file_bytes((dir / "cut.png").string(), std::vector<uint8_t>(png.begin(), png.end() - 20));
  CHECK(test::error_message([&] { read_image_header((dir / "cut.png").string()); }).find("cut.png: truncated PNG") !=
        std::string::npos);
  const std::vector<uint8_t> jpg = encode_jpeg(test::make_rgb(16, 16, 4));
  write_file_bytes((dir / "cut.jpg").string(), std::vector<uint8_t>(jpg.begin(), jpg.end() - 2));
  CHECK(test::error_message([&] { read_image_header((dir / "cut.jpg").string()); }).find("cut.jpg: truncated JPEG") !=
        std::string::npos);
}

TEST_CASE("check_dataset: every bad sample named, in index order; the good ones pass") {
  const fs::path dir = test::temp_dir("check_bad");
  const std::string list = make_list_dataset(dir, 6);
  // Sample 1: a truncated image; sample 4: a label map of another size; sample 5: a label id out of range.
  const std::vector<uint8_t> img = read_file_bytes((dir / "img/s1.png").string());
  write_file_bytes((dir / "img/s1.png").string(), std::vector<uint8_t>(img.begin(), img.begin() + 40));
  write_png((dir / "lab/s4.png").string(), test::make_blocks(5, 8, {0}, 2));
  write_png((dir / "lab/s5.png").string(), test::make_blocks(6, 8, {0, 7}, 2));
  const Dataset ds = open_list(list);
  DataCheckOptions o;
  o.threads = 3;
  size_t last_done = 0, calls = 0;
  o.progress = [&](size_t done, size_t total, size_t) {
    CHECK(total == 6);
    last_done = done;
    ++calls;
  };
  const DataCheckResult r = check_dataset(ds, o);
  REQUIRE(r.bad == std::vector<size_t>{1, 4, 5});
  CHECK(r.problems[0].find("s1.png") != std::string::npos);
  CHECK(r.problems[1].find("lab/s4.png: label map is 5x8 (HxW)") != std::string::npos);
  CHECK(r.problems[2].find("label id 7") != std::string::npos);
  CHECK(r.checked == 6);
  CHECK(last_done == 6);
  CHECK(calls >= 1);
  const Dataset kept = without_samples(ds, r.bad);
  REQUIRE(kept.size() == 3);
  CHECK(kept.files[1].image.find("s2.png") != std::string::npos);
  CHECK(check_dataset(kept, {}).bad.empty());
}

TEST_CASE("check_dataset's cache: a second check reads nothing; a changed file is checked again") {
  const fs::path dir = test::temp_dir("check_cache");
  const std::string list = make_list_dataset(dir, 4);
  const Dataset ds = open_list(list);
  DataCheckOptions o;
  o.cache_path = (dir / "data_check.json").string();
  const DataCheckResult first = check_dataset(ds, o);
  CHECK(first.checked == 4);
  CHECK(first.cached == 0);
  CHECK(fs::exists(o.cache_path));
  const DataCheckResult second = check_dataset(ds, o);
  CHECK(second.checked == 0);
  CHECK(second.cached == 4);
  CHECK(second.bad.empty());
  // Sample 2's label replaced by one of another size (and another file size): checked again, found bad.
  write_png((dir / "lab/s2.png").string(), test::make_blocks(3, 8, {1}, 2));
  const DataCheckResult third = check_dataset(ds, o);
  CHECK(third.checked == 1);
  CHECK(third.cached == 3);
  CHECK(third.bad == std::vector<size_t>{2});
  // The cached verdict "bad" is kept too.
  const DataCheckResult fourth = check_dataset(ds, o);
  CHECK(fourth.checked == 0);
  CHECK(fourth.bad == std::vector<size_t>{2});
  // A cache that is not JSON is ignored, not an error.
  test::write_text(o.cache_path, "\x01garbage");
  CHECK(check_dataset(ds, o).checked == 4);
}

TEST_CASE("check_dataset stops early when cancelled") {
  const fs::path dir = test::temp_dir("check_cancel");
  const Dataset ds = open_list(make_list_dataset(dir, 3));
  DataCheckOptions o;
  o.cancelled = [] { return true; };
  CHECK(test::error_message([&] { check_dataset(ds, o); }).find("interrupted") != std::string::npos);
}

TEST_CASE("dataset_identity: the same files elsewhere are the same dataset; another file list is not") {
  const fs::path a = test::temp_dir("identity_a"), b = test::temp_dir("identity_b");
  const nlohmann::json ia = dataset_identity(open_list(make_list_dataset(a, 3)));
  const nlohmann::json ib = dataset_identity(open_list(make_list_dataset(b / "moved" / "deeper", 3)));
  CHECK(ia == ib);
  CHECK(ia["samples"] == 3);
  CHECK(ia["name"] == "list");
  const nlohmann::json ic = dataset_identity(open_list(make_list_dataset(test::temp_dir("identity_c"), 2)));
  CHECK(ic["files_hash"] != ia["files_hash"]);
  const Dataset ds = open_list(make_list_dataset(test::temp_dir("identity_d"), 3));
  CHECK(dataset_identity(without_samples(ds, {0}))["files_hash"] != ia["files_hash"]);
}
