#include "data/synth.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "data/dataset.h"
#include "data/loader.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::data;
namespace fs = std::filesystem;

TEST_CASE("synth: deterministic for a seed, different across indices and seeds") {
  const SynthScene a = synth_scene(1, 0, 64, 128), b = synth_scene(1, 0, 64, 128);
  CHECK(a.image.pixels == b.image.pixels);
  CHECK(a.label_ids.pixels == b.label_ids.pixels);
  CHECK(synth_scene(1, 1, 64, 128).image.pixels != a.image.pixels);
  CHECK(synth_scene(2, 0, 64, 128).image.pixels != a.image.pixels);
  CHECK(a.image.height == 64);
  CHECK(a.image.width == 128);
  CHECK(a.label_ids.channels == 1);
}

TEST_CASE("synth: real Cityscapes labelIds, most classes present, void ids included, thin objects") {
  const LabelMapping m = cityscapes_label_ids_mapping();
  std::map<int, int64_t> train_counts;
  std::set<int> void_ids;
  int thin_pole_rows = 0, bad_ids = 0;
  for (uint64_t i = 0; i < 16; ++i) {
    const SynthScene s = synth_scene(3, i, 128, 256);
    for (size_t p = 0; p < s.label_ids.pixels.size(); ++p) {
      const uint8_t id = s.label_ids.pixels[p];
      const int16_t t = m.table[id];
      if (id > 33 || t == LabelMapping::kMapInvalid) {
        ++bad_ids;
        continue;
      }
      if (t >= 0) ++train_counts[t];
      else void_ids.insert(id);
    }
    // Thin structures: runs of pole pixels 1–3 wide.
    for (int y = 0; y < 128; ++y) {
      const uint8_t* row = s.label_ids.row(y);
      for (int x = 0; x < 256;) {
        if (row[x] != cityscapes_id::pole) {
          ++x;
          continue;
        }
        int e = x;
        while (e < 256 && row[e] == cityscapes_id::pole) ++e;
        if (e - x <= 3) ++thin_pole_rows;
        x = e;
      }
    }
  }
  CHECK(bad_ids == 0);
  for (int t : {0, 1, 2, 5, 8, 9, 10, 11, 13}) {
    CAPTURE(t);
    CHECK(train_counts[t] > 0);
  }
  CHECK(train_counts.size() >= 14);
  CHECK(void_ids.size() >= 2);
  CHECK(thin_pole_rows > 50);
  // Big classes dominate but do not swamp: road and building each under 60% of the labelled pixels.
  int64_t total = 0;
  for (auto& [t, n] : train_counts) total += n;
  CHECK(double(train_counts[0]) / double(total) < 0.6);
  CHECK(double(train_counts[2]) / double(total) < 0.6);
}

TEST_CASE("synth: texture, not colour alone, separates terrain from vegetation and road from sidewalk") {
  // A per-pixel nearest-mean colour classifier (fit on the same images) must stay far from perfect.
  for (auto [ca, cb] : {std::pair<uint8_t, uint8_t>{cityscapes_id::terrain, cityscapes_id::vegetation},
                        std::pair<uint8_t, uint8_t>{cityscapes_id::road, cityscapes_id::sidewalk}}) {
    CAPTURE(int(ca));
    double sum[2][3] = {}, n[2] = {};
    std::vector<std::pair<int, std::array<float, 3>>> px;
    for (uint64_t i = 0; i < 12; ++i) {
      const SynthScene s = synth_scene(5, i, 96, 192);
      for (size_t p = 0; p < s.label_ids.pixels.size(); ++p) {
        const uint8_t id = s.label_ids.pixels[p];
        if (id != ca && id != cb) continue;
        const int k = id == ca ? 0 : 1;
        std::array<float, 3> c{float(s.image.pixels[3 * p]), float(s.image.pixels[3 * p + 1]), float(s.image.pixels[3 * p + 2])};
        for (int j = 0; j < 3; ++j) sum[k][j] += c[size_t(j)];
        n[k] += 1;
        if (p % 7 == 0) px.push_back({k, c});
      }
    }
    REQUIRE(n[0] > 0);
    REQUIRE(n[1] > 0);
    int correct = 0;
    for (auto& [k, c] : px) {
      double d[2];
      for (int q = 0; q < 2; ++q) {
        d[q] = 0;
        for (int j = 0; j < 3; ++j) d[q] += std::pow(c[size_t(j)] - sum[q][j] / n[q], 2);
      }
      correct += (d[0] < d[1]) == (k == 0);
    }
    const double acc = double(correct) / double(px.size());
    MESSAGE("nearest-mean colour accuracy " << acc);
    CHECK(acc < 0.9);
  }
}

TEST_CASE("synth: the written dataset loads through the Cityscapes path") {
  const std::string root = test::temp_dir("synth");
  SynthOptions o;
  o.out = root;
  o.train = 6;
  o.val = 3;
  o.height = 64;
  o.width = 128;
  o.seed = 9;
  const SynthSummary sum = write_synthetic_cityscapes(o);
  CHECK(sum.train == 6);
  CHECK(sum.val == 3);
  CHECK(sum.bytes > 0);
  CHECK(fs::exists(fs::path(root) / "leftImg8bit/train" / synth_city("train", 0) /
                   (synth_base_name("train", 0) + "_leftImg8bit.png")));
  CHECK(fs::exists(fs::path(root) / "gtFine/val" / synth_city("val", 1) /
                   (synth_base_name("val", 1) + "_gtFine_labelIds.png")));
  auto train = std::make_shared<const Dataset>(open_dataset({"cityscapes", root, "train"}));
  const Dataset val = open_dataset({"cityscapes", root, "val"});
  CHECK(train->size() == 6);
  CHECK(val.size() == 3);
  // The files hold exactly the generated scene.
  const SynthScene s0 = synth_scene(9, 0, 64, 128);
  bool found = false;
  for (size_t i = 0; i < train->size(); ++i) {
    if (train->files[i].image.find(synth_base_name("train", 0)) == std::string::npos) continue;
    const Sample s = train->load(i);
    CHECK(s.image.pixels == s0.image.pixels);
    const LabelImage want = train->map_labels(s0.label_ids, 0, "scene 0");
    CHECK(s.label.pixels == want.pixels);
    found = true;
  }
  CHECK(found);
  LoaderConfig lc;
  lc.batch_size = 2;
  lc.max_iterations = 4;
  Loader l(train, augment_preset("cirkd", 32, 64), lc);
  Batch b;
  int n = 0;
  while (l.next(b)) ++n;
  CHECK(n == 4);
}
