// Data parallelism on the CPU with the in-process N-rank stand-in: N ranks with SyncBN and bucketed
// gradient averaging must compute what ONE rank computes with the whole batch.
#include <thread>

#include "engine/communicator.h"
#include "engine/sgd.h"
#include "harness.h"
#include "models/seg_model.h"
#include "rdd/losses.h"

using namespace rdd;

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
// gradient all-reduce (mean), SGD.
void step(models::SegModel& m, Sgd& sgd, const Tensor& x, const Tensor& y, Communicator& comm,
          const std::vector<GradBucket>& buckets) {
  m.params().zero_grad();
  const models::ModelOutputs out = m.forward(x);
  const method::TaskLoss loss = method::baseline_task_loss(out.main, out.aux, y, 0.4);
  m.backward(loss.grad_main, loss.grad_aux, Tensor());
  all_reduce_gradients(comm, m.params(), buckets);
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

  for (int world : {2, 4}) {
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
               make_grad_buckets(m.params(), 64 << 10));
        } catch (const std::exception& e) {
          errors[size_t(r)] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : errors) REQUIRE_MESSAGE(e.empty(), e);
    INFO("world " << world);
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
