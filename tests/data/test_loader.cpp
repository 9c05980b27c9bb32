#include "data/loader.h"

#include <deque>
#include <filesystem>
#include <set>

#include "engine/device.h"
#include "engine/error.h"
#include "fixtures.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::data;
namespace fs = std::filesystem;

namespace {
// A list dataset of n images of h×w with labels in 0..3 and some ignore.
std::shared_ptr<const Dataset> make_list_dataset(int n, int h = 12, int w = 16, bool same_size = true) {
  const fs::path dir = test::temp_dir("loader");
  std::string list;
  for (int i = 0; i < n; ++i) {
    const int hh = same_size ? h : h + (i % 3);
    const std::string a = "img" + std::to_string(i) + ".png", b = "lab" + std::to_string(i) + ".png";
    write_png((dir / a).string(), test::make_rgb(hh, w, uint64_t(100 + i)));
    write_png((dir / b).string(), test::make_blocks(hh, w, {uint8_t(i % 4), 1, 2, 255, 3}, 2 + i % 3));
    list += a + " " + b + "\n";
  }
  test::write_text(dir / "list.txt", list);
  return std::make_shared<const Dataset>(open_dataset({"list", (dir / "list.txt").string(), "train", 4, 255}));
}

std::vector<Batch> take(Loader& l, int n) {
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) {
    Batch b;
    REQUIRE(l.next(b));
    out.push_back(std::move(b));
  }
  return out;
}

bool same_batch(const Batch& a, const Batch& b) {
  return a.iteration == b.iteration && a.indices == b.indices &&
         a.images.to_vector<float>() == b.images.to_vector<float>() &&
         a.labels.to_vector<int32_t>() == b.labels.to_vector<int32_t>();
}
}  // namespace

TEST_CASE("sampler: each epoch is a permutation; ranks split it without overlap") {
  for (size_t n : {size_t(12), size_t(10)}) {
    for (int world : {1, 2, 3, 4}) {
      CAPTURE(n);
      CAPTURE(world);
      std::deque<SampleOrder> ranks;
      for (int r = 0; r < world; ++r) ranks.emplace_back(n, 42, r, world, true);
      const int64_t per = ranks[0].per_rank_epoch();
      CHECK(per == int64_t((n + size_t(world) - 1) / size_t(world)));
      for (int64_t epoch = 0; epoch < 3; ++epoch) {
        std::multiset<size_t> seen;
        for (int r = 0; r < world; ++r)
          for (int64_t k = 0; k < per; ++k) seen.insert(ranks[size_t(r)].index(epoch * per + k));
        std::set<size_t> distinct(seen.begin(), seen.end());
        CHECK(distinct.size() == n);                      // every sample once per epoch
        CHECK(seen.size() == size_t(per * world));        // plus the padding
        if (n % size_t(world) == 0) CHECK(seen.size() == n);  // no overlap at all
      }
      // Epochs are shuffled differently.
      CHECK(ranks[0].permutation(0) != ranks[0].permutation(1));
    }
  }
  // Global slots are unique across ranks and epochs.
  std::set<uint64_t> slots;
  for (int r = 0; r < 3; ++r) {
    SampleOrder o(10, 1, r, 3, true);
    for (int64_t k = 0; k < 20; ++k) {
      uint64_t s = 0;
      o.index(k, &s);
      CHECK(slots.insert(s).second);
    }
  }
}

TEST_CASE("loader: batches are (N,3,H,W) f32 and (N,H,W) i32 with ignore −1, pinned") {
  auto ds = make_list_dataset(6);
  LoaderConfig lc;
  lc.batch_size = 3;
  lc.workers = 2;
  lc.max_iterations = 4;
  Loader l(ds, augment_preset("cirkd", 8, 10), lc);
  Batch b;
  REQUIRE(l.next(b));
  CHECK(b.images.shape() == Shape{3, 3, 8, 10});
  CHECK(b.labels.shape() == Shape{3, 8, 10});
  CHECK(b.images.dtype() == DType::f32);
  CHECK(b.labels.dtype() == DType::i32);
  CHECK(b.images.is_pinned());
  std::set<int32_t> labels;
  for (int32_t v : b.labels.to_vector<int32_t>()) labels.insert(v);
  CHECK(labels.count(-1));
  for (int32_t v : labels) CHECK((v >= -1 && v < 4));
  CHECK(b.iteration == 0);
  int count = 1;
  while (l.next(b)) ++count;
  CHECK(count == 4);
  CHECK(l.position() == 4);
}

TEST_CASE("loader: a resumed run sees exactly the batches of an uninterrupted one, whatever the workers") {
  auto ds = make_list_dataset(7);
  const AugmentConfig aug = augment_preset("cirkd", 8, 12);
  LoaderConfig lc;
  lc.batch_size = 3;
  lc.seed = 5;
  lc.max_iterations = 9;  // crosses epoch boundaries (7 samples per epoch)
  lc.workers = 3;
  Loader full(ds, aug, lc);
  const std::vector<Batch> all = take(full, 9);
  Batch extra;
  CHECK_FALSE(full.next(extra));
  for (int start : {1, 4, 8}) {
    CAPTURE(start);
    LoaderConfig rc = lc;
    rc.start_iteration = start;
    rc.workers = 1 + start % 2;
    Loader resumed(ds, aug, rc);
    CHECK(resumed.position() == start);
    const std::vector<Batch> rest = take(resumed, 9 - start);
    for (int i = start; i < 9; ++i) CHECK(same_batch(all[size_t(i)], rest[size_t(i - start)]));
  }
  // Another seed gives other batches.
  LoaderConfig other = lc;
  other.seed = 6;
  Loader o(ds, aug, other);
  CHECK_FALSE(same_batch(take(o, 1)[0], all[0]));
}

TEST_CASE("loader: rank shards do not overlap and together cover each epoch") {
  auto ds = make_list_dataset(8);
  const AugmentConfig aug = augment_preset("cirkd", 6, 6);
  std::multiset<int64_t> seen;
  for (int r = 0; r < 2; ++r) {
    LoaderConfig lc;
    lc.batch_size = 2;
    lc.rank = r;
    lc.world = 2;
    lc.max_iterations = 2;  // 4 samples per rank = one epoch
    Loader l(ds, aug, lc);
    Batch b;
    while (l.next(b))
      for (int64_t i : b.indices) seen.insert(i);
  }
  CHECK(seen.size() == 8);
  CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 8);
}

TEST_CASE("loader: the in-memory cache gives identical batches") {
  auto ds = make_list_dataset(5);
  const AugmentConfig aug = augment_preset("mmseg", 8, 8);
  LoaderConfig lc;
  lc.batch_size = 2;
  lc.max_iterations = 6;
  Loader plain(ds, augment_preset("mmseg", 8, 8), lc);
  lc.cache = true;
  Loader cached(ds, aug, lc);
  const auto a = take(plain, 6), b = take(cached, 6);
  for (size_t i = 0; i < a.size(); ++i) CHECK(same_batch(a[i], b[i]));
  CHECK(cached.cached_samples() == 5);
  CHECK(cached.cached_bytes() == 5 * (12 * 16 * 4));
  CHECK(plain.cached_samples() == 0);
}

TEST_CASE("loader: recycled buffers are reused and still give the right batches") {
  auto ds = make_list_dataset(4);
  const AugmentConfig aug = augment_preset("cirkd", 6, 8);
  LoaderConfig lc;
  lc.batch_size = 2;
  lc.workers = 1;
  lc.prefetch = 1;
  lc.max_iterations = 6;
  Loader ref(ds, aug, lc);
  const auto want = take(ref, 6);
  Loader l(ds, aug, lc);
  for (int i = 0; i < 6; ++i) {
    Batch b;
    REQUIRE(l.next(b));
    CHECK(same_batch(b, want[size_t(i)]));
    l.recycle(std::move(b));
  }
}

TEST_CASE("loader eval mode: each rank's shard once, in order, whole images") {
  auto ds = make_list_dataset(5, 10, 14, /*same_size=*/false);
  LoaderConfig lc;
  lc.train = false;
  lc.batch_size = 1;
  lc.rank = 1;
  lc.world = 2;
  Loader l(ds, augment_preset("cirkd", 8, 8), lc);
  CHECK(l.total_batches() == 2);
  Batch b;
  std::vector<int64_t> got;
  while (l.next(b)) {
    got.push_back(b.indices[0]);
    const Sample s = ds->load(size_t(b.indices[0]));
    CHECK(b.images.shape() == Shape{1, 3, s.image.height, s.image.width});
  }
  CHECK(got == std::vector<int64_t>{1, 3});
  // Batches of differently sized images are refused with a message.
  lc.batch_size = 2;
  lc.rank = 0;
  lc.world = 1;
  Loader l2(ds, augment_preset("cirkd", 8, 8), lc);
  std::string msg;
  try {
    l2.next(b);
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("different sizes") != std::string::npos);
}

TEST_CASE("loader: a bad file stops next() with the file and the problem, no crash or hang") {
  const fs::path dir = test::temp_dir("loaderbad");
  write_png((dir / "a.png").string(), test::make_rgb(8, 8, 1));
  write_png((dir / "la.png").string(), test::make_blocks(8, 8, {1, 2}));
  std::vector<uint8_t> junk = encode_png(test::make_rgb(8, 8, 2));
  junk.resize(junk.size() / 3);
  write_file_bytes((dir / "b.png").string(), junk);
  write_png((dir / "lb.png").string(), test::make_blocks(8, 8, {1, 2}));
  test::write_text(dir / "list.txt", "a.png la.png\nb.png lb.png\n");
  auto ds = std::make_shared<const Dataset>(open_dataset({"list", (dir / "list.txt").string(), "train", 4, 255}));
  LoaderConfig lc;
  lc.batch_size = 2;
  lc.max_iterations = 3;
  Loader l(ds, augment_preset("cirkd", 8, 8), lc);
  Batch b;
  std::string msg;
  try {
    l.next(b);
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("b.png") != std::string::npos);
}

TEST_CASE("loader: a worker that cannot use its device reports it through next() (train and eval), no terminate") {
  auto ds = make_list_dataset(4);
  for (bool train : {true, false}) {
    LoaderConfig lc;
    lc.batch_size = train ? 2 : 1;
    lc.max_iterations = 2;
    lc.train = train;
    lc.device = Device::cuda(gpu_count() + 3);  // a GPU this machine does not have
    Loader l(ds, augment_preset("cirkd", 8, 10), lc);
    Batch b;
    CHECK_THROWS_WITH_AS(l.next(b), doctest::Contains("does not exist"), Error);
  }
}

GPU_TEST_CASE("loader: pinned batches copy to the GPU unchanged") {
  auto ds = make_list_dataset(4);
  LoaderConfig lc;
  lc.batch_size = 2;
  lc.max_iterations = 2;
  Loader l(ds, augment_preset("cirkd", 8, 10), lc);
  Batch b;
  REQUIRE(l.next(b));
  REQUIRE(b.images.is_pinned());
  const Tensor gi = b.images.to(Device::cuda(0)), gl = b.labels.to(Device::cuda(0));
  CHECK(gi.to_vector<float>() == b.images.to_vector<float>());
  CHECK(gl.to_vector<int32_t>() == b.labels.to_vector<int32_t>());
}
