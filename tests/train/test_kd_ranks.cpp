// The comparison KD methods under data parallelism, with the in-process N-rank stand-in: N ranks with
// SyncBN, averaged student gradients and averaged gradients of the methods' own parameters (adapters)
// must train what ONE rank trains with the whole batch, for every method whose loss over the batch is the
// mean of per-image (or per-pixel) losses.
#include <map>
#include <thread>

#include "dist/communicator.h"
#include "harness.h"
#include "models/seg_model.h"
#include "rdd/adversarial.h"
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

// `steps` steps of train_step on (x, y) with the ranks of `comm` (one or more).
void run(StepModels& m, const Tensor& x, const Tensor& y, Communicator& comm, int64_t steps = 2) {
  const bool dp = comm.data_parallel();
  std::vector<GradBucket> buckets = make_grad_buckets(m.student->params(), 1 << 20);
  OverlappedGradReducer reducer(comm, m.student->params(), buckets);
  if (dp) {
    m.student->set_stats_reducer([&comm](Tensor& t) { comm.all_reduce_sum(t); });
    m.distiller->set_ranks({comm.rank(), comm.world_size(), [&comm](Tensor& t) { comm.all_reduce_sum(t); }});
    m.comm = &comm;
  }
  for (int64_t it = 1; it <= steps; ++it)
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

TEST_CASE("the adversarial term on 2 ranks computes what one rank computes with the whole batch (SyncBN in the "
          "discriminator, its gradients averaged before Adam)") {
  // The discriminator is fed the same logits on both sides: it is badly conditioned in its input (a 1e-5
  // change of the logits, the rounding difference SyncBN leaves in a student's outputs, moves some of its
  // gradients by percents: LeakyReLU kinks), so a whole-trainer comparison would test that, not the
  // data-parallel arithmetic.
  const NetOutputs s{test::random_tensor({2, 5, 64, 64}, 17, -3, 3), Tensor(), Tensor()};
  const NetOutputs t{test::random_tensor({2, 5, 64, 64}, 18, -3, 3), Tensor(), Tensor()};
  const Tensor labels = test::random_labels({2, 512, 512}, kClasses, 19);
  auto make = [] {
    auto d = std::make_unique<method::Distiller>();
    d->add(std::make_unique<method::AdversarialTerm>(0.5, 0.1, kClasses, 8));
    d->materialize(Device::cpu(), 5);
    return d;
  };
  auto adv_of = [](method::Distiller& d) { return dynamic_cast<method::AdversarialTerm*>(d.terms()[0].get()); };
  auto ref = make();
  method::StudentGrads ref_grads;
  const method::LossTerms ref_terms = ref->compute({1, 10, 1}, s, t, labels, ref_grads);
  ref->update({1, 10, 1});
  LocalGroup group(2);
  std::vector<std::unique_ptr<method::Distiller>> ranks;
  std::vector<method::StudentGrads> grads(2);
  std::vector<method::LossTerms> terms(2);
  for (int r = 0; r < 2; ++r) ranks.push_back(make());
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      std::unique_ptr<Communicator> comm = group.rank(r);
      try {
        method::Distiller& d = *ranks[size_t(r)];
        d.set_ranks({r, 2, [&comm](Tensor& x) { comm->all_reduce_sum(x); }});
        const NetOutputs sr{s.main.slice(r, r + 1).clone(), Tensor(), Tensor()};
        const NetOutputs tr{t.main.slice(r, r + 1).clone(), Tensor(), Tensor()};
        terms[size_t(r)] = d.compute({1, 10, 1}, sr, tr, labels.slice(r, r + 1).clone(), grads[size_t(r)]);
        d.update({1, 10, 1});
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (const std::string& e : errors) CHECK(e.empty());
  for (const char* name : {"adv_g", "adv_d"})
    CHECK((terms[0].value(name) + terms[1].value(name)) / 2 == doctest::Approx(ref_terms.value(name)).epsilon(1e-5));
  method::AdversarialTerm* want = adv_of(*ref);
  for (int r = 0; r < 2; ++r) {
    CAPTURE(r);
    // Each rank's loss is its own image's mean: twice that image's share of the whole batch's.
    Tensor twice = Tensor::zeros(grads[size_t(r)].main.shape());
    method::axpy(twice, ref_grads.main.slice(r, r + 1).clone(), 2.0);
    CHECK_TENSORS_CLOSE(grads[size_t(r)].main, twice, Tolerance{1e-9, 2e-4});
    method::AdversarialTerm* adv = adv_of(*ranks[size_t(r)]);
    CHECK_TENSORS_CLOSE(adv->params().flat_grads(), want->params().flat_grads(), Tolerance{1e-8, 2e-4});
    for (Param* b : adv->params().buffers()) {
      CAPTURE(b->name);
      const Param* w = want->params().find(b->name);
      if (b->dtype == DType::i64) CHECK(b->value.to_vector<int64_t>() == w->value.to_vector<int64_t>());
      else CHECK_TENSORS_CLOSE(b->value, w->value, Tolerance{2e-6, 2e-4});
    }
    CHECK(adv->adam()->steps() == 1);
  }
}
