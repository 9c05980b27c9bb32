#include "data/dataset.h"

#include <filesystem>
#include <map>
#include <set>

#include "engine/error.h"
#include "fixtures.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::data;
namespace fs = std::filesystem;

namespace {
std::string message_of(const std::function<void()>& f) { return test::error_message(f); }

// Cityscapes fixture: two train images in two cities, one val image; the second train label is a
// pre-converted labelTrainIds file.
std::string make_cityscapes(int h = 8, int w = 12) {
  const fs::path root = test::temp_dir("cs");
  const fs::path li = root / "leftImg8bit", gt = root / "gtFine";
  test::mkdirs(li / "train" / "aachen");
  test::mkdirs(li / "train" / "bremen");
  test::mkdirs(gt / "train" / "aachen");
  test::mkdirs(gt / "train" / "bremen");
  test::mkdirs(li / "val" / "lindau");
  test::mkdirs(gt / "val" / "lindau");
  write_png((li / "train/aachen/aachen_000000_000019_leftImg8bit.png").string(), test::make_rgb(h, w, 1));
  write_png((gt / "train/aachen/aachen_000000_000019_gtFine_labelIds.png").string(),
            test::make_blocks(h, w, {7, 8, 26, 0, 1, 33, 255, 23}, 2));
  write_png((li / "train/bremen/bremen_000000_000019_leftImg8bit.png").string(), test::make_rgb(h, w, 2));
  write_png((gt / "train/bremen/bremen_000000_000019_gtFine_labelTrainIds.png").string(),
            test::make_blocks(h, w, {0, 18, 255, 5}, 2));
  write_png((li / "val/lindau/lindau_000000_000019_leftImg8bit.png").string(), test::make_rgb(h, w, 3));
  write_png((gt / "val/lindau/lindau_000000_000019_gtFine_labelIds.png").string(), test::make_blocks(h, w, {11, 21}, 2));
  return root.string();
}

std::map<int, int64_t> histogram(const LabelImage& l) {
  std::map<int, int64_t> h;
  for (uint8_t v : l.pixels) ++h[v == kIgnoreU8 ? -1 : int(v)];
  return h;
}
}  // namespace

TEST_CASE("dataset metadata: class names, palettes, weights") {
  const Dataset cs = dataset_metadata("cityscapes");
  CHECK(cs.num_classes == 19);
  CHECK(cs.class_names[0] == "road");
  CHECK(cs.class_names[13] == "car");
  CHECK(cs.class_names[18] == "bicycle");
  CHECK(cs.palette[0] == std::array<uint8_t, 3>{128, 64, 128});
  CHECK(cs.palette[10] == std::array<uint8_t, 3>{70, 130, 180});
  REQUIRE(cs.class_weights.size() == 19);
  CHECK(cs.class_weights[0] == doctest::Approx(0.8373));
  CHECK(cs.class_weights[17] == doctest::Approx(1.1529));
  const Dataset cv = dataset_metadata("camvid");
  CHECK(cv.num_classes == 11);
  CHECK(cv.class_names[10] == "bicyclist");
  CHECK(cv.class_weights.empty());
  const Dataset voc = dataset_metadata("voc");
  CHECK(voc.num_classes == 21);
  CHECK(voc.palette[1] == std::array<uint8_t, 3>{128, 0, 0});
  CHECK(voc.palette[15] == std::array<uint8_t, 3>{192, 128, 128});  // person
  CHECK(voc.class_names[20] == "tvmonitor");
  const Dataset ade = dataset_metadata("ade20k");
  CHECK(ade.num_classes == 150);
  CHECK(ade.class_names[0] == "wall");
  CHECK(ade.class_names[149] == "flag");
  std::set<std::array<uint8_t, 3>> colours(ade.palette.begin(), ade.palette.end());
  CHECK(colours.size() == 150);
  CHECK(message_of([] { dataset_metadata("kitti"); }).find("unknown dataset 'kitti'") != std::string::npos);
}

TEST_CASE("Cityscapes labelIds map to the 19 trainIds; everything else is ignore") {
  const LabelMapping m = cityscapes_label_ids_mapping();
  const int ids[19] = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33};
  int train = 0, ignore = 0, invalid = 0;
  for (int v = 0; v < 256; ++v) {
    const int16_t t = m.table[size_t(v)];
    if (t >= 0) ++train;
    else if (t == LabelMapping::kMapIgnore) ++ignore;
    else ++invalid;
  }
  CHECK(train == 19);
  CHECK(ignore == 34 - 19 + 1);  // void ids 0..33 that are not classes, and 255 (license plate)
  CHECK(invalid == 256 - 35);
  for (int t = 0; t < 19; ++t) CHECK(m.table[size_t(ids[t])] == t);
  CHECK(m.table[0] == LabelMapping::kMapIgnore);
  CHECK(m.table[9] == LabelMapping::kMapIgnore);   // parking
  CHECK(m.table[34] == LabelMapping::kMapInvalid);
}

TEST_CASE("Cityscapes layout: scan, labelIds and labelTrainIds, mapping, splits") {
  const std::string root = make_cityscapes();
  const Dataset ds = open_dataset({"cityscapes", root, "train"});
  REQUIRE(ds.size() == 2);
  CHECK(ds.files[0].image.find("aachen_000000_000019_leftImg8bit.png") != std::string::npos);
  CHECK(ds.files[0].label.find("_gtFine_labelIds.png") != std::string::npos);
  CHECK(ds.files[1].label.find("_gtFine_labelTrainIds.png") != std::string::npos);
  const Sample a = ds.load(0);
  CHECK(a.image.height == 8);
  CHECK(a.image.width == 12);
  // Blocks of 2×2 cycle through {7, 8, 26, 0, 1, 33, 255, 23} → {0, 1, 13, ign, ign, 18, ign, 10}.
  const LabelImage raw = test::make_blocks(8, 12, {7, 8, 26, 0, 1, 33, 255, 23}, 2);
  const std::map<int, int> want = {{7, 0}, {8, 1}, {26, 13}, {0, -1}, {1, -1}, {33, 18}, {255, -1}, {23, 10}};
  for (size_t i = 0; i < raw.pixels.size(); ++i) {
    const int got = a.label.pixels[i] == kIgnoreU8 ? -1 : a.label.pixels[i];
    CHECK(got == want.at(raw.pixels[i]));
  }
  const Sample b = ds.load(1);
  const auto hb = histogram(b.label);
  CHECK(hb.count(0));
  CHECK(hb.count(18));
  CHECK(hb.count(5));
  CHECK(hb.count(-1));
  CHECK(hb.size() == 4);
  const Dataset val = open_dataset({"cityscapes", root, "val"});
  REQUIRE(val.size() == 1);
  const auto hv = histogram(val.load(0).label);
  CHECK(hv.size() == 2);
  CHECK(hv.count(2));  // building
  CHECK(hv.count(8));  // vegetation
}

TEST_CASE("bad Cityscapes data stops with messages naming the files") {
  const std::string root = make_cityscapes();
  const fs::path gt = fs::path(root) / "gtFine" / "train";
  const fs::path li = fs::path(root) / "leftImg8bit" / "train";
  // A label id outside the mapping.
  write_png((gt / "aachen/aachen_000000_000019_gtFine_labelIds.png").string(), test::make_blocks(8, 12, {7, 40}, 2));
  Dataset ds = open_dataset({"cityscapes", root, "train"});
  std::string msg = message_of([&] { ds.load(0); });
  CHECK(msg.find("aachen_000000_000019_gtFine_labelIds.png") != std::string::npos);
  CHECK(msg.find("label id 40") != std::string::npos);
  CHECK(msg.find("Cityscapes labelIds") != std::string::npos);
  // A label map whose size differs from its image.
  write_png((gt / "aachen/aachen_000000_000019_gtFine_labelIds.png").string(), test::make_blocks(8, 10, {7}, 2));
  msg = message_of([&] { ds.load(0); });
  CHECK(msg.find("label map is 10x8") != std::string::npos);
  CHECK(msg.find("is 12x8") != std::string::npos);
  // An image that does not decode.
  test::write_text(li / "bremen/bremen_000000_000019_leftImg8bit.png", "not a png");
  msg = message_of([&] { ds.load(1); });
  CHECK(msg.find("bremen_000000_000019_leftImg8bit.png") != std::string::npos);
  // Missing labels: all of them are named (strict mode throws, collecting mode lists them).
  fs::remove(gt / "aachen/aachen_000000_000019_gtFine_labelIds.png");
  fs::remove(gt / "bremen/bremen_000000_000019_gtFine_labelTrainIds.png");
  msg = message_of([&] { open_dataset({"cityscapes", root, "train"}); });
  CHECK(msg.find("2 problems") != std::string::npos);
  CHECK(msg.find("aachen_000000_000019_gtFine_labelIds.png: label file missing") != std::string::npos);
  CHECK(msg.find("bremen_000000_000019_gtFine_labelIds.png: label file missing") != std::string::npos);
  std::vector<std::string> problems;
  const Dataset partial = open_dataset({"cityscapes", root, "train"}, &problems);
  CHECK(partial.size() == 0);
  CHECK(problems.size() == 2);
  // No such folder.
  CHECK(message_of([&] { open_dataset({"cityscapes", root + "/nowhere", "train"}); }).find("is not a folder") !=
        std::string::npos);
  CHECK(message_of([&] { open_dataset({"cityscapes", root, "test"}); }).find("leftImg8bit/test") != std::string::npos);
}

TEST_CASE("CamVid: reference list files and the SegNet folder layout; class 11 is ignore") {
  const fs::path root = test::temp_dir("camvid");
  test::mkdirs(root / "train");
  test::mkdirs(root / "trainannot");
  test::mkdirs(root / "test");
  test::mkdirs(root / "testannot");
  for (int i = 0; i < 3; ++i) {
    const std::string n = "0001TP_00" + std::to_string(6690 + i) + ".png";
    write_png((root / "train" / n).string(), test::make_rgb(6, 9, uint64_t(10 + i)));
    write_png((root / "trainannot" / n).string(), test::make_blocks(6, 9, {0, 3, 11, 10}, 3));
  }
  write_png((root / "test/Seq05VD_f00000.png").string(), test::make_rgb(6, 9, 20));
  write_png((root / "testannot/Seq05VD_f00000.png").string(), test::make_blocks(6, 9, {1, 12}, 3));
  // Folder scan.
  const Dataset scan = open_dataset({"camvid", root.string(), "train"});
  REQUIRE(scan.size() == 3);
  const auto h = histogram(scan.load(2).label);
  CHECK(h.size() == 4);
  CHECK(h.count(-1));  // 11 → ignore
  CHECK(h.count(10));
  // The reference list (absolute SegNet paths that do not exist here are resolved under the root).
  test::write_text(root / "train.txt",
                   "/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png\n"
                   "train/0001TP_006692.png trainannot/0001TP_006692.png\n");
  const Dataset listed = open_dataset({"camvid", root.string(), "train"});
  REQUIRE(listed.size() == 2);
  CHECK(listed.files[1].image == (root / "train/0001TP_006692.png").string());
  // 12 is outside CamVid's mapping.
  const Dataset test_split = open_dataset({"camvid", root.string(), "test"});
  const std::string msg = message_of([&] { test_split.load(0); });
  CHECK(msg.find("Seq05VD_f00000.png") != std::string::npos);
  CHECK(msg.find("label id 12") != std::string::npos);
}

TEST_CASE("Pascal VOC: id lists, SegmentationClassAug (grey) and SegmentationClass (palette)") {
  const fs::path root = fs::path(test::temp_dir("voc")) / "VOCdevkit" / "VOC2012";
  test::mkdirs(root / "JPEGImages");
  test::mkdirs(root / "SegmentationClass");
  test::mkdirs(root / "SegmentationClassAug");
  test::mkdirs(root / "ImageSets" / "Segmentation");
  const Palette pal = voc_palette(256);
  for (const char* id : {"2007_000032", "2007_000039", "2008_000001"}) {
    write_jpeg((root / "JPEGImages" / (std::string(id) + ".jpg")).string(), test::make_rgb(10, 14, 5));
    write_png((root / "SegmentationClassAug" / (std::string(id) + ".png")).string(),
              test::make_blocks(10, 14, {0, 15, 255, 20}, 2));
    write_png((root / "SegmentationClass" / (std::string(id) + ".png")).string(),
              test::make_blocks(10, 14, {0, 1, 255}, 2), 6, &pal);
  }
  test::write_text(root / "ImageSets/Segmentation/train_aug.txt", "2007_000032\n2007_000039\n");
  test::write_text(root / "ImageSets/Segmentation/val.txt", "2008_000001\n");
  const Dataset train = open_dataset({"voc", root.parent_path().parent_path().string(), "train"});
  REQUIRE(train.size() == 2);
  CHECK(train.files[0].label.find("SegmentationClassAug") != std::string::npos);
  const auto ht = histogram(train.load(0).label);
  CHECK(ht.size() == 4);
  CHECK(ht.count(15));
  CHECK(ht.count(20));
  CHECK(ht.count(-1));
  const Dataset val = open_dataset({"voc", root.string(), "val"});
  REQUIRE(val.size() == 1);
  CHECK(val.files[0].label.find("SegmentationClass/") != std::string::npos);
  const Sample v = val.load(0);
  const auto hv = histogram(v.label);  // palette indices, not colours
  CHECK(hv.size() == 3);
  CHECK(hv.count(0));
  CHECK(hv.count(1));
  CHECK(hv.count(-1));
  CHECK(v.image.channels == 3);
  // A list line pointing nowhere.
  test::write_text(root / "ImageSets/Segmentation/val.txt", "2008_000001\n2011_999999\n");
  const std::string msg = message_of([&] { open_dataset({"voc", root.string(), "val"}); });
  CHECK(msg.find("2011_999999.jpg: image file missing") != std::string::npos);
  CHECK(msg.find("val.txt line 2") != std::string::npos);
}

TEST_CASE("ADE20K: reduce-zero-label (0 → ignore, v → v − 1), ids above 150 refused") {
  const fs::path root = fs::path(test::temp_dir("ade")) / "ADEChallengeData2016";
  test::mkdirs(root / "images/training");
  test::mkdirs(root / "annotations/training");
  test::mkdirs(root / "images/validation");
  test::mkdirs(root / "annotations/validation");
  write_jpeg((root / "images/training/ADE_train_00000001.jpg").string(), test::make_rgb(7, 11, 6));
  write_png((root / "annotations/training/ADE_train_00000001.png").string(), test::make_blocks(7, 11, {0, 1, 150, 42}, 2));
  write_jpeg((root / "images/validation/ADE_val_00000001.jpg").string(), test::make_rgb(7, 11, 7));
  write_png((root / "annotations/validation/ADE_val_00000001.png").string(), test::make_blocks(7, 11, {151, 3}, 2));
  const Dataset tr = open_dataset({"ade20k", root.parent_path().string(), "train"});
  REQUIRE(tr.size() == 1);
  const auto h = histogram(tr.load(0).label);
  CHECK(h.size() == 4);
  CHECK(h.count(-1));
  CHECK(h.count(0));
  CHECK(h.count(149));
  CHECK(h.count(41));
  const Dataset va = open_dataset({"ade20k", root.string(), "val"});
  CHECK(message_of([&] { va.load(0); }).find("label id 151") != std::string::npos);
  CHECK(message_of([&] { open_dataset({"ade20k", root.string(), "test"}); }).find("has no labels") != std::string::npos);
}

TEST_CASE("generic list: class count and ignore value; empty lists and bad lines are errors") {
  const fs::path dir = test::temp_dir("list");
  test::mkdirs(dir / "img");
  test::mkdirs(dir / "lab");
  write_png((dir / "img/a.png").string(), test::make_rgb(5, 6, 8));
  write_png((dir / "lab/a.png").string(), test::make_blocks(5, 6, {0, 4, 99}, 1));
  write_png((dir / "img/b.png").string(), test::make_rgb(5, 6, 9));
  write_png((dir / "lab/b.png").string(), test::make_blocks(5, 6, {5}, 1));
  test::write_text(dir / "list.txt", "# comment\nimg/a.png lab/a.png\n\nimg/b.png lab/b.png\n");
  DatasetSpec spec{"list", (dir / "list.txt").string(), "train", 5, 99};
  const Dataset ds = open_dataset(spec);
  REQUIRE(ds.size() == 2);
  CHECK(ds.class_names.size() == 5);
  const auto h = histogram(ds.load(0).label);
  CHECK(h.size() == 3);
  CHECK(h.count(-1));
  CHECK(h.count(4));
  CHECK(message_of([&] { ds.load(1); }).find("label id 5") != std::string::npos);

  test::write_text(dir / "empty.txt", "\n# nothing\n");
  CHECK(message_of([&] { open_dataset({"list", (dir / "empty.txt").string(), "train", 5, 99}); }).find("no samples found") !=
        std::string::npos);
  test::write_text(dir / "bad.txt", "img/a.png\nimg/c.png lab/c.png\n");
  const std::string msg = message_of([&] { open_dataset({"list", (dir / "bad.txt").string(), "train", 5, 99}); });
  CHECK(msg.find("bad.txt line 1: expected 'image label'") != std::string::npos);
  CHECK(msg.find("c.png: image file missing") != std::string::npos);
  CHECK(msg.find("bad.txt line 2") != std::string::npos);
  CHECK(message_of([&] { open_dataset({"list", (dir / "nope.txt").string(), "train", 5, 99}); }).find("nope.txt") !=
        std::string::npos);
  CHECK(message_of([&] { open_dataset({"list", (dir / "list.txt").string(), "train", 5, 3}); }).find("is a class id") !=
        std::string::npos);
}
