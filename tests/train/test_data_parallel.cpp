// Data parallelism on the CPU with the in-process N-rank stand-in: N ranks with SyncBN and bucketed
// gradient averaging must compute what ONE rank computes with the whole batch.
#include <thread>

#include "dist/communicator.h"
#include "engine/sgd.h"
#include "harness.h"
#include "models/seg_model.h"
#include "rdd/losses.h"

using namespace rdd;
using namespace rdd::dist;

namespace {
constexpr int kClasses = 5;

std::unique_ptr<models::SegModel> make_model() {
  auto m = models::build_model("deeplabv3_resnet18", {kClasses, 0.125});
  m->params().materialize(Device::cpu());
  m->init_weights(42);
  m->set_dropout_enabled(false);  // dropout masks are indexed by position in the batch
  return m;
}

// One training step on (x, y): forward, baseline CE (main + 0.4 aux, mean over valid pixels), backward,
// gradient all-reduce (mean) — after the backward, or overlapped with it — and SGD.
void step(models::SegModel& m, Sgd& sgd, const Tensor& x, const Tensor& y, Communicator& comm,
          const std::vector<GradBucket>& buckets, bool overlapped = false) {
  m.params().zero_grad();
  const NetOutputs out = m.forward(x);
  const method::TaskLoss loss = method::baseline_task_loss(out.main, out.aux, y, 0.4);
  if (overlapped) {
    OverlappedGradReducer reducer(comm, m.params(), buckets);
    m.set_grad_ready_hook([&](int64_t begin) { reducer.ready(begin); });
    reducer.begin_step();
    m.backward(loss.grad_main, loss.grad_aux, Tensor());
    const int64_t early = reducer.launched_during_backward();
    reducer.finish();
    m.set_grad_ready_hook({});
    if (comm.world_size() > 1 && buckets.size() > 2 && early < int64_t(buckets.size()) - 1)
      throw Error("only " + std::to_string(early) + " of " + std::to_string(buckets.size()) +
                  " buckets started during the backward");
  } else {
    m.backward(loss.grad_main, loss.grad_aux, Tensor());
    all_reduce_gradients(comm, m.params(), buckets);
  }
  sgd.step(0.01);
}
}  // namespace

TEST_CASE("N ranks with SyncBN give the gradients and updated weights of one rank with the whole batch") {
  const Tensor x = test::random_tensor({4, 3, 24, 32}, 7);
  const Tensor y = test::random_labels({4, 24, 32}, kClasses, 8);  // no ignored pixels: equal counts per rank

  // Reference: one rank, the whole batch.
  auto ref = make_model();
  Sgd ref_sgd(ref->params(), {0.9, 1e-4, false});
  SoloCommunicator solo;
  step(*ref, ref_sgd, x, y, solo, make_grad_buckets(ref->params(), 1 << 20));

  for (auto [world, overlapped] : {std::pair{2, false}, std::pair{4, false}, std::pair{2, true}, std::pair{4, true}}) {
    LocalGroup group(world);
    std::vector<std::unique_ptr<models::SegModel>> models(static_cast<size_t>(world));
    std::vector<std::string> errors(static_cast<size_t>(world));
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r) {
      models[size_t(r)] = make_model();
      threads.emplace_back([&, r] {
        try {
          auto comm = group.rank(r);
          models::SegModel& m = *models[size_t(r)];
          m.set_stats_reducer([&](Tensor& sums) { comm->all_reduce_sum(sums); });
          Sgd sgd(m.params(), {0.9, 1e-4, false});
          const int64_t per = 4 / world;
          // Small buckets: several all-reduces per step, each over its own range.
          step(m, sgd, x.slice(r * per, (r + 1) * per), y.slice(r * per, (r + 1) * per), *comm,
               make_grad_buckets(m.params(), 64 << 10), overlapped);
        } catch (const std::exception& e) {
          errors[size_t(r)] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : errors) REQUIRE_MESSAGE(e.empty(), e);
    INFO("world " << world << (overlapped ? ", all-reduce overlapped with backward" : ""));
    for (int r = 0; r < world; ++r) {
      const ParamStore& got = models[size_t(r)]->params();
      CHECK_TENSORS_CLOSE(got.flat_grads(), ref->params().flat_grads(), Tolerance{2e-6, 2e-4});
      CHECK_TENSORS_CLOSE(got.flat_values(), ref->params().flat_values(), Tolerance{1e-7, 1e-5});
      for (const Param& p : got.entries())
        if (!p.trainable && p.dtype == DType::f32)  // running statistics (SyncBN: identical to the whole batch's)
          CHECK_TENSORS_CLOSE(p.value, ref->params().find(p.name)->value, Tolerance{1e-6, 1e-4});
    }
    // And every rank holds the same weights.
    for (int r = 1; r < world; ++r)
      CHECK(models[size_t(r)]->params().flat_values().to_vector<float>() ==
            models[0]->params().flat_values().to_vector<float>());
  }
}

TEST_CASE("gradient-ready offsets are honest: nothing at or above an announced offset changes afterwards") {
  for (const char* name : {"deeplabv3_resnet18", "psp_resnet18", "deeplabv3_mobilenetv2"}) {
    auto m = models::build_model(name, {kClasses, 0.125});
    m->params().materialize(Device::cpu());
    m->init_weights(5);
    m->set_dropout_enabled(false);
    const Tensor x = test::random_tensor({2, 3, 24, 32}, 9);
    const Tensor y = test::random_labels({2, 24, 32}, kClasses, 10);
    std::vector<std::pair<int64_t, std::vector<float>>> snapshots;  // (offset, gradients from it on)
    m->set_grad_ready_hook([&](int64_t begin) {
      const Tensor g = m->params().flat_grads();
      snapshots.emplace_back(begin, g.slice(begin, g.numel()).to_vector<float>());
    });
    m->params().zero_grad();
    const NetOutputs out = m->forward(x);
    const method::TaskLoss loss = method::baseline_task_loss(out.main, out.aux, y, 0.4);
    m->backward(loss.grad_main, loss.grad_aux, Tensor());
    INFO(name);
    REQUIRE(snapshots.size() > 5);
    CHECK(snapshots.back().first == 0);  // ends with "everything is final"
    const std::vector<float> final_grads = m->params().flat_grads().to_vector<float>();
    int64_t previous = m->params().padded_count();
    for (const auto& [begin, snap] : snapshots) {
      CHECK(begin <= previous);  // the frontier only moves down
      previous = begin;
      bool unchanged = true;
      for (size_t i = 0; i < snap.size(); ++i) unchanged = unchanged && snap[i] == final_grads[size_t(begin) + i];
      CHECK_MESSAGE(unchanged, "gradients above offset " << begin << " changed after they were announced final");
    }
  }
}
