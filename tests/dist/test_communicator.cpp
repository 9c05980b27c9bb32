#include "dist/communicator.h"

#include <atomic>
#include <thread>

#include "engine/rng.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::dist;

namespace {
// Runs body(rank, comm) on `world` threads; rethrows the first failure.
void run_ranks(int world, const std::function<void(int, Communicator&)>& body) {
  LocalGroup group(world);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto comm = group.rank(r);
      try {
        body(r, *comm);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& e : errors)
    if (!e.empty()) throw Error(e);
}
}  // namespace

TEST_CASE("local group: all_reduce sums in rank order; broadcast copies the root; repeated rounds") {
  for (int world : {1, 2, 4}) {
    std::vector<std::vector<float>> results(static_cast<size_t>(world));
    run_ranks(world, [&](int r, Communicator& c) {
      CHECK(c.world_size() == world);
      for (int round = 0; round < 5; ++round) {
        Tensor t = Tensor::full({3}, double(r + 1 + round));
        c.all_reduce_sum(t);
        const double want = world * (world + 1) / 2.0 + world * round;
        if (t.to_vector<float>() != std::vector<float>(3, float(want))) throw Error("wrong sum");
      }
      Tensor b = Tensor::full({2}, double(10 * r));
      c.broadcast(b, world - 1);
      results[size_t(r)] = b.to_vector<float>();
      Tensor m = Tensor::full({1}, double(r), DType::f64);
      c.all_reduce_mean(m);
      if (m.item() != (world - 1) / 2.0) throw Error("wrong mean");
      c.barrier();
    });
    for (auto& v : results) CHECK(v == std::vector<float>(2, float(10 * (world - 1))));
  }
}

TEST_CASE("local group: a mismatched collective fails every rank instead of hanging") {
  CHECK_THROWS_WITH_AS(run_ranks(3,
                                 [](int r, Communicator& c) {
                                   Tensor t = Tensor::zeros({r == 1 ? 4 : 3});
                                   c.all_reduce_sum(t);
                                 }),
                       doctest::Contains("mismatched"), Error);
}

TEST_CASE("gradient buckets cover the flat buffer exactly once, last parameters first") {
  ParamStore store;
  store.add_parameter("a", {100});
  store.add_buffer("a_stat", {7});
  store.add_parameter("b", {3, 50});
  store.add_parameter("c", {1});
  store.add_parameter("d", {2000});
  store.materialize(Device::cpu());
  for (size_t bucket_bytes : {size_t(4), size_t(1000), size_t(1) << 30}) {
    const std::vector<GradBucket> buckets = make_grad_buckets(store, bucket_bytes);
    REQUIRE_FALSE(buckets.empty());
    CHECK(buckets.front().end == store.padded_count());
    CHECK(buckets.back().begin == 0);
    for (size_t i = 1; i < buckets.size(); ++i) CHECK(buckets[i].end == buckets[i - 1].begin);
    std::vector<std::string> names;
    for (const auto& b : buckets) names.insert(names.end(), b.parameters.begin(), b.parameters.end());
    CHECK(names == std::vector<std::string>{"d", "c", "b", "a"});
    if (bucket_bytes == 4) CHECK(buckets.size() == 4);
    if (bucket_bytes == (size_t(1) << 30)) CHECK(buckets.size() == 1);
  }
}

TEST_CASE("all_reduce_gradients averages every gradient over ranks") {
  const int world = 3;
  std::vector<std::vector<float>> grads(static_cast<size_t>(world));
  run_ranks(world, [&](int r, Communicator& c) {
    ParamStore store;
    store.add_parameter("w", {5, 7});
    store.add_parameter("b", {5});
    store.materialize(Device::cpu());
    Tensor g = store.flat_grads();
    fill_uniform(g, -1, 1, 100 + uint64_t(r), 0);
    const auto buckets = make_grad_buckets(store, 64);
    all_reduce_gradients(c, store, buckets);
    grads[size_t(r)] = store.flat_grads().to_vector<float>();
  });
  // Expected: the mean of the three ranks' random gradients.
  ParamStore ref;
  ref.add_parameter("w", {5, 7});
  ref.add_parameter("b", {5});
  ref.materialize(Device::cpu());
  std::vector<double> mean(size_t(ref.padded_count()), 0.0);
  for (int r = 0; r < world; ++r) {
    Tensor g = Tensor::empty({ref.padded_count()});
    fill_uniform(g, -1, 1, 100 + uint64_t(r), 0);
    const auto v = g.to_vector<float>();
    for (size_t i = 0; i < v.size(); ++i) mean[i] += v[i] / world;
  }
  for (int r = 0; r < world; ++r)
    for (size_t i = 0; i < mean.size(); ++i) CHECK(grads[size_t(r)][i] == doctest::Approx(mean[i]).epsilon(1e-6));
  CHECK(grads[0] == grads[2]);  // identical on every rank
}

TEST_CASE("NCCL watchdog: keeps waiting while a collective is within the timeout or finished") {
  using P = dist::detail::NcclWatchPoll;
  for (P::Collective c : {P::kIdle, P::kEnqueueing, P::kRunning, P::kDone}) {
    P p;
    p.collective = c;
    p.timeout_s = 30;
    p.pending_s = 29.5;
    CHECK(dist::detail::nccl_watchdog_verdict(p).empty());
  }
  // Finished (or nothing started): however long ago the last collective began, nothing is stuck.
  for (P::Collective c : {P::kIdle, P::kDone}) {
    P p;
    p.collective = c;
    p.timeout_s = 30;
    p.pending_s = 1e6;
    CHECK(dist::detail::nccl_watchdog_verdict(p).empty());
  }
}

TEST_CASE("NCCL watchdog: a collective pending past the timeout aborts, also while still being enqueued") {
  using P = dist::detail::NcclWatchPoll;
  // kEnqueueing: an NCCL call that has not returned (a dead peer during connection setup) counts as
  // pending from before the call, like a kernel that never finishes.
  for (P::Collective c : {P::kEnqueueing, P::kRunning}) {
    P p;
    p.collective = c;
    p.timeout_s = 30;
    p.pending_s = 31.2;
    const std::string verdict = dist::detail::nccl_watchdog_verdict(p);
    CHECK(verdict == "NCCL communicator aborted by the watchdog after 31 s: a collective has waited more than 30 s "
                     "(--nccl-timeout) for the other ranks (a rank died or hangs)");
  }
}

TEST_CASE("NCCL watchdog: a CUDA error on the communication stream aborts at once, naming the error") {
  using P = dist::detail::NcclWatchPoll;
  P p;
  p.collective = P::kCudaError;
  p.cuda_error = "cudaErrorIllegalAddress: an illegal memory access was encountered";
  p.timeout_s = 1800;
  p.pending_s = 0.4;  // far within the timeout: not reported later as a peer hang
  CHECK(dist::detail::nccl_watchdog_verdict(p) ==
        "NCCL communicator aborted by the watchdog after 0 s: a CUDA error on the communication stream: "
        "cudaErrorIllegalAddress: an illegal memory access was encountered");
  p.pending_s = 4000;  // and it is named rather than the timeout
  CHECK(dist::detail::nccl_watchdog_verdict(p).find("cudaErrorIllegalAddress") != std::string::npos);
  CHECK(dist::detail::nccl_watchdog_verdict(p).find("waited more than") == std::string::npos);
}

TEST_CASE("NCCL watchdog: an asynchronous NCCL error aborts, pending or not") {
  using P = dist::detail::NcclWatchPoll;
  P idle;
  idle.nccl_error = "remote process exited or there was a network error";
  idle.timeout_s = 1800;
  CHECK(dist::detail::nccl_watchdog_verdict(idle) ==
        "NCCL communicator aborted by the watchdog: NCCL reported an asynchronous error: remote process exited or "
        "there was a network error");
  P running = idle;
  running.collective = P::kRunning;
  running.pending_s = 12.6;
  CHECK(dist::detail::nccl_watchdog_verdict(running) ==
        "NCCL communicator aborted by the watchdog after 13 s: NCCL reported an asynchronous error: remote process "
        "exited or there was a network error");
}

SILICON_TEST_CASE("NCCL with one rank: all_reduce and broadcast are identities, mean divides by 1") {
  auto comm = make_nccl_communicator(nccl_unique_id(), 0, 1, 0);
  Tensor x = test::random_tensor({1000}, 3);
  Tensor g = x.to(Device::cuda(0));
  comm->all_reduce_sum(g);
  comm->all_reduce_mean(g);
  comm->broadcast(g, 0);
  comm->barrier();
  CHECK_TENSORS_CLOSE(g, x, Tolerance{0, 0});
}

SILICON_TEST_CASE("NCCL with one rank: async means of kept and temporary tensors, wait_async, barrier") {
  auto comm = make_nccl_communicator(nccl_unique_id(), 0, 1, 0);
  const Tensor x = test::random_tensor({4096}, 5);
  Tensor kept = x.to(Device::cuda(0));
  {
    Tensor temporary = x.to(Device::cuda(0));
    comm->all_reduce_mean_async(temporary);
    comm->all_reduce_mean_async(kept);
  }  // the communicator holds `temporary` until wait_async
  comm->wait_async();
  comm->barrier();
  CHECK_NOTHROW(comm->throw_if_failed());
  CHECK_TENSORS_CLOSE(kept, x, Tolerance{0, 0});
  CHECK_THROWS_WITH_AS(comm->broadcast(kept, 1), doctest::Contains("root 1 outside [0, 1)"), Error);
}

SILICON_TEST_CASE("NCCL init with a rank that never joins fails after the timeout instead of hanging") {
  // Rank 1 of 2 never calls in: the nonblocking init is polled against the 2 s timeout, then aborted.
  CHECK_THROWS_WITH_AS(make_nccl_communicator(nccl_unique_id(), 0, 2, 0, 2.0),
                       doctest::Contains("rank 0 of 2 waited more than 2 s (--nccl-timeout)"), Error);
}
