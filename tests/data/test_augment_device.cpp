#include "data/augment_device.h"

#include "engine/device.h"
#include "fixtures.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::data;

namespace {
struct Case {
  std::vector<Sample> samples;
  std::vector<AugmentRecord> records;
  Tensor want_images, want_labels;
};

// Random images of several sizes, drawn with plan_cirkd and transformed by augment_train (the CPU
// loader's path): the reference the shared pixel code must reproduce bit for bit.
Case make_case(const AugmentConfig& cfg, int n, uint64_t seed) {
  Case c;
  const int64_t plane = int64_t(cfg.crop_h) * cfg.crop_w;
  c.want_images = Tensor::empty({n, 3, cfg.crop_h, cfg.crop_w});
  c.want_labels = Tensor::empty({n, cfg.crop_h, cfg.crop_w}, DType::i32);
  for (int i = 0; i < n; ++i) {
    Sample s;
    const int h = 17 + 13 * (i % 3), w = 29 + 7 * (i % 4);
    s.image = test::make_rgb(h, w, seed + uint64_t(i));
    s.label = test::make_blocks(h, w, {1, 7, kIgnoreU8, 18, 3}, 1 + i % 3);
    PhiloxStream plan_rng = sample_stream(seed, uint64_t(i)), rng = sample_stream(seed, uint64_t(i));
    c.records.push_back(plan_cirkd(h, w, cfg, plan_rng));
    const AugmentRecord r = augment_train(s, cfg, rng, c.want_images.data<float>() + size_t(i) * 3 * size_t(plane),
                                          c.want_labels.data<int32_t>() + size_t(i) * size_t(plane));
    CHECK(r.scale == c.records.back().scale);
    CHECK(r.crop_x == c.records.back().crop_x);
    CHECK(r.flipped == c.records.back().flipped);
    c.samples.push_back(std::move(s));
  }
  return c;
}

void run_on(Device dev, const AugmentConfig& cfg, int n, uint64_t seed) {
  Case c = make_case(cfg, n, seed);
  std::vector<DeviceSample> ds;
  for (const Sample& s : c.samples) ds.push_back(upload_sample(s, dev));
  std::vector<const DeviceSample*> ptrs;
  for (const DeviceSample& d : ds) ptrs.push_back(&d);
  Tensor images = Tensor::empty({n, 3, cfg.crop_h, cfg.crop_w}, DType::f32, dev);
  Tensor labels = Tensor::empty({n, cfg.crop_h, cfg.crop_w}, DType::i32, dev);
  augment_cirkd_device(ptrs, c.records, cfg, images, labels);
  CHECK(images.to_vector<float>() == c.want_images.to_vector<float>());  // bit-identical
  CHECK(labels.to_vector<int32_t>() == c.want_labels.to_vector<int32_t>());
}
}  // namespace

TEST_CASE("cirkd pixel code shared with the GPU reproduces augment_train exactly (host run)") {
  run_on(Device::cpu(), augment_preset("cirkd", 24, 40), 12, 3);  // crops larger and smaller than the images
  run_on(Device::cpu(), augment_preset("cirkd", 9, 11), 7, 4);
}

TEST_CASE("augment_cirkd_device refuses mismatched arguments") {
  const AugmentConfig cfg = augment_preset("cirkd", 8, 8);
  Case c = make_case(cfg, 2, 5);
  const DeviceSample d = upload_sample(c.samples[0], Device::cpu());
  Tensor images = Tensor::empty({2, 3, 8, 8}), labels = Tensor::empty({2, 8, 8}, DType::i32);
  CHECK_THROWS_WITH_AS(augment_cirkd_device({&d}, c.records, cfg, images, labels), doctest::Contains("1 samples but 2 records"),
                       Error);
  Tensor small = Tensor::empty({1, 3, 8, 8});
  CHECK_THROWS_WITH_AS(augment_cirkd_device({&d}, {c.records[0]}, cfg, small, labels), doctest::Contains("labels must be"),
                       Error);
  CHECK_THROWS_AS(augment_cirkd_device({&d}, {c.records[0]}, augment_preset("mmseg", 8, 8), small, labels), Error);
}

GPU_TEST_CASE("cirkd augmentation on the GPU is bit-identical to the CPU loader's") {
  run_on(Device::cuda(0), augment_preset("cirkd", 24, 40), 12, 3);
  run_on(Device::cuda(0), augment_preset("cirkd", 9, 11), 40, 4);  // > 32 jobs: two launches
}
