#include "data/augment.h"

#include <cmath>
#include <map>
#include <set>

#include <filesystem>

#include "engine/error.h"
#include "fixtures.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::data;

namespace {
Sample make_sample(int h, int w, uint64_t seed, const std::vector<uint8_t>& classes, int block = 3) {
  Sample s;
  s.image = test::make_rgb(h, w, seed);
  s.label = test::make_blocks(h, w, classes, block);
  return s;
}

struct Out {
  std::vector<float> img;
  std::vector<int32_t> lab;
  AugmentRecord rec;
};

Out run(const Sample& s, const AugmentConfig& c, uint64_t seed, uint64_t slot) {
  Out o;
  o.img.resize(size_t(3) * size_t(c.crop_h) * size_t(c.crop_w));
  o.lab.resize(size_t(c.crop_h) * size_t(c.crop_w));
  PhiloxStream rng = sample_stream(seed, slot);
  o.rec = augment_train(s, c, rng, o.img.data(), o.lab.data());
  return o;
}

// The first slot whose draw has the given cirkd scale index (0..15) and flip.
uint64_t find_slot(const Sample& s, const AugmentConfig& c, double scale, bool flip) {
  for (uint64_t slot = 0; slot < 5000; ++slot) {
    PhiloxStream rng = sample_stream(7, slot);
    const int k = int(rng.next_int(0, 16));
    if (std::fabs(0.5 + k / 10.0 - scale) > 1e-9) continue;
    const Out o = run(s, c, 7, slot);
    if (o.rec.flipped == flip) return slot;
  }
  FAIL("no slot found");
  return 0;
}
}  // namespace

TEST_CASE("cirkd: scale 0.5 halves the image, padding is 0 (after the mean) and ignore, flip mirrors") {
  const Sample s = make_sample(20, 30, 1, {3, 7, 11, kIgnoreU8, 0});
  AugmentConfig c = augment_preset("cirkd", 24, 40);  // larger than the scaled image: no crop, pad only
  const Normalization n = c.norm;
  for (bool flip : {false, true}) {
    CAPTURE(flip);
    const uint64_t slot = find_slot(s, c, 0.5, flip);
    const Out o = run(s, c, 7, slot);
    CHECK(o.rec.scaled_h == 10);
    CHECK(o.rec.scaled_w == 15);
    CHECK(o.rec.crop_y == 0);
    CHECK(o.rec.crop_x == 0);
    const Image want_img = resize_bilinear(s.image, 10, 15, 2.0, 2.0);
    const Image want_lab = resize_nearest(s.label, 10, 15, 2.0, 2.0);
    const size_t plane = 24 * 40;
    int mismatches = 0;
    for (int y = 0; y < 24; ++y)
      for (int x = 0; x < 40; ++x) {
        const int ox = flip ? 39 - x : x;
        const size_t o_i = size_t(y) * 40 + size_t(ox);
        if (y < 10 && x < 15) {
          const uint8_t* p = want_img.row(y) + x * 3;
          // BGR, minus the Caffe mean, no std.
          if (std::fabs(o.img[o_i] - (float(p[2]) - n.mean[0])) > 1e-3f) ++mismatches;
          if (std::fabs(o.img[plane + o_i] - (float(p[1]) - n.mean[1])) > 1e-3f) ++mismatches;
          if (std::fabs(o.img[2 * plane + o_i] - (float(p[0]) - n.mean[2])) > 1e-3f) ++mismatches;
          const uint8_t l = want_lab.row(y)[x];
          if (o.lab[o_i] != (l == kIgnoreU8 ? -1 : int(l))) ++mismatches;
        } else {
          for (int ch = 0; ch < 3; ++ch)
            if (o.img[size_t(ch) * plane + o_i] != 0.0f) ++mismatches;
          if (o.lab[o_i] != -1) ++mismatches;
        }
      }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("cirkd: scale 1.0 keeps pixels exactly; scale 2.0 doubles; crops stay inside") {
  const Sample s = make_sample(16, 20, 2, {1, 2, 3, 4});
  const AugmentConfig c = augment_preset("cirkd", 8, 10);
  const uint64_t slot = find_slot(s, c, 1.0, false);
  const Out o = run(s, c, 7, slot);
  CHECK(o.rec.scaled_h == 16);
  CHECK(o.rec.scaled_w == 20);
  CHECK(o.rec.crop_y >= 0);
  CHECK(o.rec.crop_y <= 8);
  CHECK(o.rec.crop_x <= 10);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 10; ++x) {
      const uint8_t* p = s.image.row(o.rec.crop_y + y) + (o.rec.crop_x + x) * 3;
      CHECK(o.img[size_t(y) * 10 + size_t(x)] == doctest::Approx(float(p[2]) - c.norm.mean[0]).epsilon(1e-6));
      CHECK(o.lab[size_t(y) * 10 + size_t(x)] == int(s.label.row(o.rec.crop_y + y)[o.rec.crop_x + x]));
    }
  const Out d = run(s, c, 7, find_slot(s, c, 2.0, true));
  CHECK(d.rec.scaled_h == 32);
  CHECK(d.rec.scaled_w == 40);
  CHECK(d.rec.crop_y + 8 <= 32);
  CHECK(d.rec.crop_x + 10 <= 40);
}

TEST_CASE("labels are never interpolated, at any scale, in both presets") {
  const std::vector<uint8_t> classes = {2, 9, 17, kIgnoreU8, 5};
  const Sample s = make_sample(33, 47, 3, classes, 1);  // 1-pixel blocks: every neighbour differs
  for (const char* preset : {"cirkd", "mmseg"}) {
    AugmentConfig c = augment_preset(preset, 21, 29);
    c.scale_long = 60;
    c.scale_short = 30;
    std::set<int> allowed = {2, 9, 17, -1, 5};
    for (uint64_t slot = 0; slot < 60; ++slot) {
      const Out o = run(s, c, 3, slot);
      for (int32_t l : o.lab) {
        if (!allowed.count(l)) {
          FAIL("label " << l << " appeared (preset " << preset << ", slot " << slot << ")");
        }
      }
    }
  }
}

TEST_CASE("cirkd draws: every discrete scale appears, flips are about half, offsets cover the range") {
  const Sample s = make_sample(40, 60, 4, {1, 2});
  const AugmentConfig c = augment_preset("cirkd", 16, 24);
  std::map<int, int> scales;
  int flips = 0, max_y = 0, max_x = 0;
  const int n = 1600;
  for (int i = 0; i < n; ++i) {
    const Out o = run(s, c, 11, uint64_t(i));
    const int k = int(std::lround((o.rec.scale - 0.5) * 10));
    CHECK(std::fabs(o.rec.scale - (0.5 + k / 10.0)) < 1e-9);
    ++scales[k];
    flips += o.rec.flipped;
    CHECK(o.rec.crop_y + c.crop_h <= std::max(o.rec.scaled_h, c.crop_h));
    CHECK(o.rec.crop_x + c.crop_w <= std::max(o.rec.scaled_w, c.crop_w));
    if (k == 15) {
      max_y = std::max(max_y, o.rec.crop_y);
      max_x = std::max(max_x, o.rec.crop_x);
    }
  }
  CHECK(scales.size() == 16);
  CHECK(scales.begin()->first == 0);
  CHECK(scales.rbegin()->first == 15);
  for (const auto& [k, count] : scales) CHECK(count > n / 16 / 2);
  CHECK(flips > n * 0.45);
  CHECK(flips < n * 0.55);
  CHECK(max_y > 80 - 16 - 12);  // at scale 2.0 offsets reach near the far edge
  CHECK(max_x > 120 - 24 - 16);
}

TEST_CASE("augmentation is deterministic per (seed, slot) and differs across slots") {
  const Sample s = make_sample(30, 40, 5, {1, 2, 3});
  for (const char* preset : {"cirkd", "mmseg"}) {
    AugmentConfig c = augment_preset(preset, 16, 16);
    c.scale_long = 40;
    c.scale_short = 30;
    const Out a = run(s, c, 5, 77), b = run(s, c, 5, 77), d = run(s, c, 5, 78), e = run(s, c, 6, 77);
    CHECK(a.img == b.img);
    CHECK(a.lab == b.lab);
    CHECK(a.img != d.img);
    CHECK(a.img != e.img);
  }
}

TEST_CASE("mmseg: RGB ImageNet normalisation, cat_max_ratio re-draws, photometric changes colours only") {
  // A label that is mostly class 1 with a small region of class 2 at the bottom-right.
  Sample s = make_sample(64, 64, 6, {1});
  for (int y = 48; y < 64; ++y)
    for (int x = 48; x < 64; ++x) s.label.pixels[size_t(y) * 64 + size_t(x)] = 2;
  AugmentConfig c = augment_preset("mmseg", 24, 24);
  c.scale_long = 64;
  c.scale_short = 64;
  c.ratio_min = 1.0f;
  c.ratio_max = 1.0001f;  // scale 1: the crop is a window of the original
  int accepted = 0, retried = 0;
  for (uint64_t slot = 0; slot < 200; ++slot) {
    const Out o = run(s, c, 9, slot);
    if (o.rec.crop_tries > 1) ++retried;
    if (o.rec.crop_tries < 10) {
      ++accepted;
      std::map<int, int> h;
      for (int32_t l : o.lab) ++h[l];
      REQUIRE(h.size() == 2);
      const int largest = std::max(h[1], h[2]);
      CHECK(double(largest) / double(24 * 24) < 0.75);
    }
  }
  CHECK(accepted > 0);
  CHECK(retried > 0);

  // Without photometric distortion the output is exactly (rgb − mean) / std of the crop.
  c.photometric = false;
  c.flip = false;
  c.cat_max_ratio = 1.0f;
  const Out o = run(s, c, 9, 3);
  const uint8_t* p = s.image.row(o.rec.crop_y) + o.rec.crop_x * 3;
  CHECK(o.img[0] == doctest::Approx((float(p[0]) - 123.675f) / 58.395f).epsilon(1e-5));
  CHECK(o.img[24 * 24] == doctest::Approx((float(p[1]) - 116.28f) / 57.12f).epsilon(1e-5));
  CHECK(o.img[2 * 24 * 24] == doctest::Approx((float(p[2]) - 103.53f) / 57.375f).epsilon(1e-5));
  c.photometric = true;
  int changed = 0;
  for (uint64_t slot = 0; slot < 20; ++slot) {
    const Out plain = [&] {
      AugmentConfig q = c;
      q.photometric = false;
      return run(s, q, 9, slot);
    }();
    const Out photo = run(s, c, 9, slot);
    CHECK(photo.lab == plain.lab);  // geometry identical
    if (photo.img != plain.img) ++changed;
  }
  CHECK(changed > 10);  // P(no distortion at all) = 1/16
}

TEST_CASE("mmseg: images smaller than the crop are padded bottom/right with 0 and ignore, flip before pad") {
  const Sample s = make_sample(10, 12, 7, {4, 5});
  AugmentConfig c = augment_preset("mmseg", 16, 16);
  c.scale_long = 12;
  c.scale_short = 10;
  c.ratio_min = 1.0f;
  c.ratio_max = 1.0001f;
  c.photometric = false;
  for (uint64_t slot = 0; slot < 8; ++slot) {
    const Out o = run(s, c, 2, slot);
    CHECK(o.rec.scaled_h == 10);
    CHECK(o.rec.scaled_w == 12);
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) {
        const size_t i = size_t(y) * 16 + size_t(x);
        if (y >= 10 || x >= 12) {
          CHECK(o.lab[i] == -1);
          CHECK(o.img[i] == 0.0f);
        } else {
          const int sx = o.rec.flipped ? 11 - x : x;
          CHECK(o.lab[i] == int(s.label.row(y)[sx]));
        }
      }
  }
}

TEST_CASE("mmseg base scale follows the dataset's config: Cityscapes 2048x1024 keeps its size at ratio 1") {
  CHECK(augment_preset("mmseg", 512, 1024, "cityscapes").scale_short == 1024);
  CHECK(augment_preset("mmseg", 512, 1024).scale_short == 1024);
  CHECK(augment_preset("mmseg", 512, 512, "ade20k").scale_short == 512);
  CHECK(augment_preset("mmseg", 512, 512).scale_short == 512);
  CHECK(augment_preset("mmseg", 360, 360, "camvid").scale_long == 960);
  // A 64×128 "Cityscapes" image with base scale (128, 64) and ratio 1 stays 64×128.
  const Sample s = make_sample(64, 128, 13, {1, 2});
  AugmentConfig c = augment_preset("mmseg", 16, 32, "cityscapes");
  c.scale_long = 128;
  c.scale_short = 64;
  c.ratio_min = 1.0f;
  c.ratio_max = 1.0001f;
  const Out o = run(s, c, 1, 1);
  CHECK(o.rec.scaled_h == 64);
  CHECK(o.rec.scaled_w == 128);
}

TEST_CASE("eval transform: whole image, normalisation only") {
  const Sample s = make_sample(5, 7, 8, {0, kIgnoreU8, 3});
  const Normalization n = preset_normalization(Preset::cirkd);
  std::vector<float> img(3 * 35);
  std::vector<int32_t> lab(35);
  transform_eval(s, n, img.data(), lab.data());
  for (int i = 0; i < 35; ++i) {
    CHECK(img[size_t(i)] == doctest::Approx(float(s.image.pixels[3 * size_t(i) + 2]) - 104.00698793f));
    CHECK(img[size_t(70 + i)] == doctest::Approx(float(s.image.pixels[3 * size_t(i)]) - 122.67891434f));
    const uint8_t l = s.label.pixels[size_t(i)];
    CHECK(lab[size_t(i)] == (l == kIgnoreU8 ? -1 : int(l)));
  }
  CHECK_THROWS_AS(augment_preset("fancy", 8, 8), Error);
}

TEST_CASE("resize_bilinear matches cv2's half-pixel rule on a known case") {
  // A 1×4 grey ramp upscaled ×2: destination x maps to (x + 0.5)/2 − 0.5.
  Image src;
  src.height = 1;
  src.width = 4;
  src.channels = 1;
  src.pixels = {0, 40, 80, 120};
  const Image up = resize_bilinear(src, 1, 8, 0.5, 0.5);
  // cv2.resize(np.array([[0,40,80,120]],np.uint8), None, fx=2, fy=1) → [0,10,30,50,70,90,110,120]
  CHECK(up.pixels == std::vector<uint8_t>{0, 10, 30, 50, 70, 90, 110, 120});
  const Image down = resize_nearest(src, 1, 2, 2.0, 2.0);
  CHECK(down.pixels == std::vector<uint8_t>{0, 80});
}

TEST_CASE("resampling matches PyTorch's bilinear (align_corners=False) and nearest, up and down") {
  const std::string dir = test::temp_dir("resize");
  const Image rgb = test::make_rgb(37, 53, 12);
  const Image lab = test::make_blocks(37, 53, {3, 9, 27, 81, 243}, 1);
  write_png(dir + "/rgb.png", rgb);
  write_png(dir + "/lab.png", lab);
  for (auto [oh, ow] : {std::pair<int, int>{74, 106}, {19, 27}, {50, 31}}) {
    CAPTURE(oh);
    CAPTURE(ow);
    std::string out;
    const int rc = test::run_command(test::python() + " " + test::source_path("tests/data/resize_reference.py") + " " +
                                         dir + "/rgb.png " + dir + "/lab.png " + std::to_string(oh) + " " +
                                         std::to_string(ow) + " " + dir + "/ref_rgb.png " + dir + "/ref_lab.png",
                                     &out);
    if (rc != 0 && out.find("No module named 'PIL'") != std::string::npos) {
      MESSAGE("PIL not available; skipping the PyTorch resize parity check");
      return;
    }
    REQUIRE_MESSAGE(rc == 0, out);
    const Image ref = read_image(dir + "/ref_rgb.png");
    const LabelImage ref_lab = read_label_png(dir + "/ref_lab.png");
    const double iy = 37.0 / oh, ix = 53.0 / ow;
    const Image got = resize_bilinear(rgb, oh, ow, iy, ix);
    const Image got_lab = resize_nearest(lab, oh, ow, iy, ix);
    int worst = 0;
    for (size_t i = 0; i < got.pixels.size(); ++i) worst = std::max(worst, std::abs(int(got.pixels[i]) - int(ref.pixels[i])));
    CHECK(worst <= 1);  // u8 fixed-point weights (cv2) vs double
    CHECK(got_lab.pixels == ref_lab.pixels);
  }
}
