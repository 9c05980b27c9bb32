// The comparison KD methods under data parallelism, with the in-process N-rank stand-in: N ranks with
// SyncBN, averaged student gradients and averaged gradients of the methods' own parameters (adapters)
// must train what ONE rank trains with the whole batch, for every method whose loss over the batch is the
// mean of per-image (or per-pixel) losses.
#include <thread>

#include "dist/communicator.h"
#include "harness.h"
#include "models/seg_model.h"
#include "train/distiller.h"
#include "train/train_step.h"

using namespace rdd;
using namespace rdd::dist;
using namespace rdd::train;

namespace {
constexpr int kClasses = 5;

StepModels make_models(const LossOptions& loss) {
  StepModels m;
  m.student = models::build_model("deeplabv3_resnet18", {kClasses, 0.125});
  m.student->params().materialize(Device::cpu());
  m.student->init_weights(42);
  m.student->set_dropout_enabled(false);  // dropout masks are indexed by position in the batch
  m.sgd = std::make_unique<Sgd>(m.student->params(), SgdOptions{0.9, 1e-4, false});
  m.teacher = models::build_model("deeplabv3_resnet18", {kClasses, 0.25});
  m.teacher->params().materialize(Device::cpu(), false);
  m.teacher->init_weights(43);
  m.teacher->set_mode(layers::Mode::eval);
  DistillShapes shapes{kClasses, m.student->feature_channels(), m.teacher->feature_channels()};
  m.distiller = make_distiller(loss, 10, Tensor(), shapes, Device::cpu(), 5);
  if (m.distiller->has_parameters()) m.distill_sgd = std::make_unique<Sgd>(m.distiller->params(), SgdOptions{0.9, 1e-4, false});
  return m;
}

// Two steps of train_step on (x, y) with the ranks of `comm` (one or more).
void run(StepModels& m, const Tensor& x, const Tensor& y, Communicator& comm) {
  const bool dp = comm.data_parallel();
  std::vector<GradBucket> buckets = make_grad_buckets(m.student->params(), 1 << 20);
  OverlappedGradReducer reducer(comm, m.student->params(), buckets);
  if (dp) {
    m.student->set_stats_reducer([&comm](Tensor& t) { comm.all_reduce_sum(t); });
    m.distiller->set_ranks({comm.rank(), comm.world_size(), [&comm](Tensor& t) { comm.all_reduce_sum(t); }});
    m.comm = &comm;
  }
  for (int64_t it = 1; it <= 2; ++it)
    train_step(m, {.iteration = it, .iterations = 10, .lr = 0.01, .seed = 1}, x, y, dp ? &reducer : nullptr);
}
}  // namespace

TEST_CASE("KD methods on N ranks train what one rank trains with the whole batch (adapters included)") {
  const Tensor x = test::random_tensor({4, 3, 32, 40}, 7);
  const Tensor y = test::random_labels({4, 32, 40}, kClasses, 8);  // no ignored pixels: equal counts per rank
  LossOptions loss;
  SUBCASE("task only") {}
  SUBCASE("KD") { loss.kd = 1; }
  SUBCASE("FitNet") { loss.fitnet = 1; }
  SUBCASE("CWD feature") { loss.cwd_feature = 1; }
  // AT and PSD at the scripts' weights (10000, 1000) make the stem's gradient a sum of large terms that
  // cancel: f32 rounding then differs by more than the tolerance after two steps; smaller weights test the
  // same data-parallel arithmetic.
  SUBCASE("AT") { loss.at = 10; }
  SUBCASE("SKD") { loss.skd = 1; }
  SUBCASE("IFVD") { loss.ifvd = 10; }
  // CIRKD's mini-batch term pairs the images of a rank (as the release does per GPU): not decomposable, so
  // weight 0 here; its memory terms and the queue update (all-gathered, rank order) are.
  SUBCASE("CIRKD (memory terms, queues)") {
    loss.cirkd = 1;
    loss.cirkd_minibatch = 0;
    loss.cirkd_pixel_memory = 40;
    loss.cirkd_region_memory = 6;
    loss.cirkd_pixel_contrast = 50;
    loss.cirkd_region_contrast = 20;
  }
  SUBCASE("DSD") {
    loss.dsd = 1;
    loss.dsd_psd = 10;
  }
  StepModels ref = make_models(loss);
  SoloCommunicator solo;
  run(ref, x, y, solo);

  for (int world : {2, 4}) {
    CAPTURE(world);
    LocalGroup group(world);
    std::vector<StepModels> ranks;
    for (int r = 0; r < world; ++r) ranks.push_back(make_models(loss));
    std::vector<std::string> errors(static_cast<size_t>(world));
    std::vector<std::thread> threads;
    const int64_t per = 4 / world;
    for (int r = 0; r < world; ++r)
      threads.emplace_back([&, r] {
        std::unique_ptr<Communicator> comm = group.rank(r);
        try {
          run(ranks[size_t(r)], x.slice(r * per, (r + 1) * per).clone(), y.slice(r * per, (r + 1) * per).clone(), *comm);
        } catch (const std::exception& e) {
          errors[size_t(r)] = e.what();
        }
      });
    for (auto& t : threads) t.join();
    for (const std::string& e : errors) CHECK(e.empty());
    for (int r = 0; r < world; ++r) {
      CAPTURE(r);
      CHECK_TENSORS_CLOSE(ranks[size_t(r)].student->params().flat_values(), ref.student->params().flat_values(),
                          Tolerance{2e-6, 2e-4});
      for (Param* b : ranks[size_t(r)].distiller->params().buffers()) {  // queues, pointers, BN statistics
        CAPTURE(b->name);
        const Param* want = ref.distiller->params().find(b->name);
        REQUIRE(want);
        if (b->dtype == DType::i64) CHECK(b->value.to_vector<int64_t>() == want->value.to_vector<int64_t>());
        else CHECK_TENSORS_CLOSE(b->value, want->value, Tolerance{2e-6, 2e-4});
      }
      if (ref.distill_sgd) {
        CHECK_TENSORS_CLOSE(ranks[size_t(r)].distiller->params().flat_values(), ref.distiller->params().flat_values(),
                            Tolerance{2e-6, 2e-4});
        CHECK_TENSORS_CLOSE(ranks[size_t(r)].distill_sgd->momentum_buffer(), ref.distill_sgd->momentum_buffer(),
                            Tolerance{2e-6, 2e-4});
      }
    }
  }
}
