// BatchNorm2d: a batch worked by hand, a two-pass double oracle, finite differences in f64, the SyncBN
// hook (a batch split over two emulated ranks equals the whole batch), numerical stability far from
// zero, GPU-vs-CPU parity, PyTorch parity, argument errors, the module.
#include "layers/batchnorm2d.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "engine/device.h"
#include "engine/safetensors.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::layers;
using namespace rdd::dist;

namespace {

struct BnInputs {
  Tensor x, gamma, beta, rm, rv, r;  // r: upstream gradient
};

BnInputs make_bn(const Shape& shape, uint64_t seed, DType dt = DType::f32, double x_offset = 0.0) {
  const int64_t C = shape[1];
  BnInputs in;
  in.x = test::random_normal(shape, seed, x_offset, 2.0, dt);
  in.gamma = test::random_tensor({C}, seed + 1, 0.5, 1.5, dt);
  in.beta = test::random_tensor({C}, seed + 2, -1, 1, dt);
  in.rm = test::random_tensor({C}, seed + 3, -0.5, 0.5, dt);
  in.rv = test::random_tensor({C}, seed + 4, 0.5, 2.0, dt);
  in.r = test::random_tensor(shape, seed + 5, -1, 1, dt);
  return in;
}

// The oracle: two-pass statistics in double, the textbook backward.
struct BnRef {
  Tensor y, dx, dgamma, dbeta, rm, rv, y_eval;  // f64
};
BnRef naive_bn(const BnInputs& in32, double eps, double momentum) {
  auto f64 = [](const Tensor& t) { return t.to_dtype(DType::f64); };
  const Tensor x = f64(in32.x), g = f64(in32.gamma), b = f64(in32.beta), r = f64(in32.r);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3), M = N * HW;
  BnRef out;
  out.y = Tensor::empty(x.shape(), DType::f64);
  out.dx = Tensor::empty(x.shape(), DType::f64);
  out.y_eval = Tensor::empty(x.shape(), DType::f64);
  out.dgamma = Tensor::zeros({C}, DType::f64);
  out.dbeta = Tensor::zeros({C}, DType::f64);
  out.rm = f64(in32.rm);
  out.rv = f64(in32.rv);
  const Tensor rm0 = f64(in32.rm), rv0 = f64(in32.rv);
  for (int64_t c = 0; c < C; ++c) {
    auto at = [&](const Tensor& t, int64_t n, int64_t i) -> double& { return t.at<double>((n * C + c) * HW + i); };
    double mean = 0, var = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) mean += at(x, n, i);
    mean /= double(M);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) var += (at(x, n, i) - mean) * (at(x, n, i) - mean);
    var /= double(M);
    const double is = 1 / std::sqrt(var + eps), gc = g.at<double>(c), bc = b.at<double>(c);
    const double is_eval = 1 / std::sqrt(rv0.at<double>(c) + eps);
    double sdy = 0, sdyx = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        const double xh = (at(x, n, i) - mean) * is;
        at(out.y, n, i) = xh * gc + bc;
        at(out.y_eval, n, i) = (at(x, n, i) - rm0.at<double>(c)) * is_eval * gc + bc;
        sdy += at(r, n, i);
        sdyx += at(r, n, i) * xh;
      }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        const double xh = (at(x, n, i) - mean) * is;
        at(out.dx, n, i) = gc * is / double(M) * (double(M) * at(r, n, i) - sdy - xh * sdyx);
      }
    out.dgamma.at<double>(c) = sdyx;
    out.dbeta.at<double>(c) = sdy;
    out.rm.at<double>(c) = (1 - momentum) * rm0.at<double>(c) + momentum * mean;
    out.rv.at<double>(c) = (1 - momentum) * rv0.at<double>(c) + momentum * var * double(M) / double(M - 1);
  }
  return out;
}

const Tolerance kF32{2e-5, 1e-4};

struct TrainResult {
  Tensor y, dx, dgamma, dbeta, rm, rv;
};
// One training forward + backward through the functional API (running stats are copies of in.rm/in.rv).
TrainResult train_step(const BnInputs& in, Device dev, double eps = 1e-5, double momentum = 0.1,
                       const StatsReducer& fwd = {}, const StatsReducer& bwd = {}) {
  TrainResult res;
  res.rm = in.rm.to(dev);
  res.rv = in.rv.to(dev);
  const Tensor x = in.x.to(dev), g = in.gamma.to(dev);
  BatchNormSaved saved;
  res.y = batchnorm2d_forward_train(x, g, in.beta.to(dev), res.rm, res.rv, eps, momentum, &saved, fwd);
  const BatchNorm2dGrads grads = batchnorm2d_backward(in.r.to(dev), x, g, saved, bwd);
  res.dx = grads.dx;
  res.dgamma = grads.dgamma;
  res.dbeta = grads.dbeta;
  return res;
}

// Every output of a training step within its tolerance: y, running mean and variance, dx, dgamma/dbeta.
struct StepTolerances {
  Tolerance y, rm, rv, dx, dparams;
};
void check_step_close(const TrainResult& got, const TrainResult& want, const StepTolerances& t) {
  CHECK_TENSORS_CLOSE(got.y, want.y, t.y);
  CHECK_TENSORS_CLOSE(got.rm, want.rm, t.rm);
  CHECK_TENSORS_CLOSE(got.rv, want.rv, t.rv);
  CHECK_TENSORS_CLOSE(got.dx, want.dx, t.dx);
  CHECK_TENSORS_CLOSE(got.dgamma, want.dgamma, t.dparams);
  CHECK_TENSORS_CLOSE(got.dbeta, want.dbeta, t.dparams);
}

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> all = {
      {2, 3, 5, 7},   {1, 5, 9, 11}, {4, 4, 8, 8},    {3, 1, 1, 2}, {2, 6, 1, 1},
      {4, 3, 37, 41}, {8, 5, 64, 64}, {1, 3, 101, 33},
  };
  return all;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Closed form
// ---------------------------------------------------------------------------------------------

TEST_CASE("batchnorm2d: a known batch, worked by hand (train, running stats, eval, backward)") {
  // channel 0 holds 1, 2 | 3, 4: mean 2.5, biased var 1.25, unbiased 5/3
  // channel 1 holds 10, 10 | 10, 14: mean 11, biased var 3, unbiased 4
  const Tensor x = Tensor::from_vector<float>({1, 2, 10, 10, 3, 4, 10, 14}, {2, 2, 1, 2});
  const Tensor gamma = Tensor::from_vector<float>({2, 0.5f}, {2});
  const Tensor beta = Tensor::from_vector<float>({1, -1}, {2});
  Tensor rm = Tensor::from_vector<float>({0.5f, -1}, {2});
  Tensor rv = Tensor::from_vector<float>({2, 3}, {2});
  const double eps = 1e-5;
  BatchNormSaved saved;
  const Tensor y = batchnorm2d_forward_train(x, gamma, beta, rm, rv, eps, 0.1, &saved);
  const double s0 = 1 / std::sqrt(1.25 + eps), s1 = 1 / std::sqrt(3 + eps);
  const std::vector<double> want = {(1 - 2.5) * s0 * 2 + 1, (2 - 2.5) * s0 * 2 + 1,   (10 - 11) * s1 * .5 - 1,
                                    (10 - 11) * s1 * .5 - 1, (3 - 2.5) * s0 * 2 + 1,   (4 - 2.5) * s0 * 2 + 1,
                                    (10 - 11) * s1 * .5 - 1, (14 - 11) * s1 * .5 - 1};
  CHECK_TENSORS_CLOSE(y, Tensor::from_vector<double>(want, {2, 2, 1, 2}), kF32);
  CHECK(rm.at<float>(0) == doctest::Approx(0.9 * 0.5 + 0.1 * 2.5));
  CHECK(rm.at<float>(1) == doctest::Approx(0.9 * -1 + 0.1 * 11));
  CHECK(rv.at<float>(0) == doctest::Approx(0.9 * 2 + 0.1 * 5.0 / 3.0));  // unbiased: 5/3, not 1.25
  CHECK(rv.at<float>(1) == doctest::Approx(0.9 * 3 + 0.1 * 4.0));
  CHECK(saved.mean.at<float>(0) == doctest::Approx(2.5));
  CHECK(saved.count.at<float>(1) == 4.f);

  // dy = 1 everywhere: Σdy = M per channel goes to beta, Σx̂ = 0 to gamma, and dx vanishes.
  BatchNorm2dGrads g = batchnorm2d_backward(Tensor::full({2, 2, 1, 2}, 1.0), x, gamma, saved);
  CHECK(g.dbeta.to_vector<float>() == std::vector<float>{4, 4});
  CHECK(std::fabs(g.dgamma.at<float>(0)) < 1e-5f);
  for (float v : g.dx.to_vector<float>()) CHECK(std::fabs(v) < 1e-5f);
  // dy = x̂: dgamma = Σx̂² = M·var/(var + eps), dx = gamma·invstd·x̂·eps/(var + eps) ≈ 0.
  const Tensor xhat = Tensor::from_vector<double>(
      {-1.5 * s0, -0.5 * s0, -s1, -s1, 0.5 * s0, 1.5 * s0, -s1, 3 * s1}, {2, 2, 1, 2});
  g = batchnorm2d_backward(xhat.to_dtype(DType::f32), x, gamma, saved);
  CHECK(g.dgamma.at<float>(0) == doctest::Approx(4 * 1.25 / (1.25 + eps)));
  CHECK(g.dgamma.at<float>(1) == doctest::Approx(4 * 3 / (3 + eps)));
  for (float v : g.dx.to_vector<float>()) CHECK(std::fabs(v) < 1e-4f);

  // Eval: the (updated) running statistics normalise.
  const Tensor ye = batchnorm2d_forward_eval(x, gamma, beta, rm, rv, eps);
  const double m0 = 0.7, v0 = 0.9 * 2 + 0.1 * 5.0 / 3.0;
  CHECK(ye.at<float>(0) == doctest::Approx((1 - m0) / std::sqrt(v0 + eps) * 2 + 1));
  CHECK(ye.at<float>(7) == doctest::Approx((14 - 0.2) / std::sqrt(3.1 + eps) * 0.5 - 1));
}

// ---------------------------------------------------------------------------------------------
// Against the two-pass oracle
// ---------------------------------------------------------------------------------------------

TEST_CASE("batchnorm2d: train forward, running stats, backward and eval match the two-pass oracle") {
  uint64_t seed = 40;
  for (const Shape& s : shapes()) {
    INFO("shape " << shape_str(s));
    for (DType dt : {DType::f32, DType::f64}) {
      const BnInputs in = make_bn(s, seed += 10, dt);
      const BnRef want = naive_bn(in, 1e-5, 0.1);
      const TrainResult got = train_step(in, Device::cpu());
      const Tolerance tol = dt == DType::f32 ? kF32 : Tolerance{1e-10, 1e-9};
      CHECK_TENSORS_CLOSE(got.y, want.y, tol);
      CHECK_TENSORS_CLOSE(got.rm, want.rm, tol);
      CHECK_TENSORS_CLOSE(got.rv, want.rv, tol);
      CHECK_TENSORS_CLOSE(got.dx, want.dx, dt == DType::f32 ? Tolerance{1e-4, 1e-4} : tol);
      CHECK_TENSORS_CLOSE(got.dgamma, want.dgamma, dt == DType::f32 ? Tolerance{1e-4, 1e-4} : tol);
      CHECK_TENSORS_CLOSE(got.dbeta, want.dbeta, dt == DType::f32 ? Tolerance{1e-4, 1e-4} : tol);
      CHECK_TENSORS_CLOSE(batchnorm2d_forward_eval(in.x, in.gamma, in.beta, in.rm, in.rv, 1e-5), want.y_eval, tol);
    }
  }
}

TEST_CASE("batchnorm2d: f32 statistics stay accurate far from zero (mean 1000, std 2)") {
  // Σx² − (Σx)²/M in f32 would lose every digit of a variance of 4 next to a mean² of 10⁶. The shifted
  // sums keep it: locally around x[0, c, 0, 0], under a reducer around running_mean.
  const BnInputs in = make_bn({4, 3, 17, 19}, 77, DType::f32, 1000.0);
  const BnRef want = naive_bn(in, 1e-5, 0.1);
  const TrainResult local = train_step(in, Device::cpu());
  CHECK_TENSORS_CLOSE(local.y, want.y, Tolerance{1e-4, 1e-4});
  CHECK_TENSORS_CLOSE(local.rv, want.rv, Tolerance{1e-5, 1e-5});
  BnInputs near = in;
  near.rm = Tensor::full({3}, 999.0);
  const BnRef want_near = naive_bn(near, 1e-5, 0.1);
  const TrainResult synced = train_step(near, Device::cpu(), 1e-5, 0.1, [](Tensor&) {}, [](Tensor&) {});
  CHECK_TENSORS_CLOSE(synced.y, want_near.y, Tolerance{1e-4, 1e-4});
  CHECK_TENSORS_CLOSE(synced.rv, want_near.rv, Tolerance{1e-5, 1e-5});
}

// ---------------------------------------------------------------------------------------------
// Finite differences (f64)
// ---------------------------------------------------------------------------------------------

TEST_CASE("batchnorm2d: training gradients match finite differences in f64 (x, gamma, beta)") {
  for (const Shape& s : {Shape{2, 3, 3, 4}, Shape{1, 2, 5, 3}, Shape{4, 2, 1, 1}}) {
    INFO("shape " << shape_str(s));
    BnInputs in = make_bn(s, 200 + uint64_t(s[0]), DType::f64);
    auto loss = [&] {
      Tensor rm = in.rm.clone(), rv = in.rv.clone();
      return dot(batchnorm2d_forward_train(in.x, in.gamma, in.beta, rm, rv, 1e-5, 0.1, nullptr), in.r);
    };
    const TrainResult got = train_step(in, Device::cpu());
    const Tolerance tol{1e-7, 1e-6};
    test::check_gradient("batchnorm2d dL/dx", in.x, loss, got.dx, 1e-6, tol);
    test::check_gradient("batchnorm2d dL/dgamma", in.gamma, loss, got.dgamma, 1e-6, tol);
    test::check_gradient("batchnorm2d dL/dbeta", in.beta, loss, got.dbeta, 1e-6, tol);
  }
}

// ---------------------------------------------------------------------------------------------
// The SyncBN hook
// ---------------------------------------------------------------------------------------------

namespace {
// Splits the batch in two "ranks"; the reducer of each adds the other's recorded partial sums (an
// all-reduce by hand). Each half must then see the statistics — and produce the outputs — of the whole.
void check_split_batch(const BnInputs& in, Device dev, Tolerance tol) {
  const int64_t N = in.x.size(0), h = N / 2;
  auto half = [&](int64_t b, int64_t e) {
    BnInputs p = in;
    p.x = in.x.slice(b, e).clone();
    p.r = in.r.slice(b, e).clone();
    return p;
  };
  const BnInputs a = half(0, h), b = half(h, N);
  Tensor fa, fb, ba, bb;  // recorded local partial sums (forward, backward) of each rank
  auto record = [](Tensor& into) { return [&into](Tensor& p) { into = p.clone(); }; };
  train_step(a, dev, 1e-5, 0.1, record(fa), record(ba));
  train_step(b, dev, 1e-5, 0.1, record(fb), record(bb));
  REQUIRE(fa.shape() == Shape{3, in.x.size(1)});
  REQUIRE(ba.shape() == Shape{2, in.x.size(1)});
  auto add = [](const Tensor& other) {
    return [other](Tensor& p) {
      Tensor host = p.to(Device::cpu());
      const Tensor o = other.to(Device::cpu());
      for (int64_t i = 0; i < host.numel(); ++i) host.at<float>(i) += o.at<float>(i);
      p.copy_from(host);
    };
  };
  // The backward sums of a rank depend on the global mean/invstd, so record them again after a synced forward.
  train_step(a, dev, 1e-5, 0.1, add(fb), record(ba));
  train_step(b, dev, 1e-5, 0.1, add(fa), record(bb));
  const TrainResult ra = train_step(a, dev, 1e-5, 0.1, add(fb), add(bb));
  const TrainResult rb = train_step(b, dev, 1e-5, 0.1, add(fa), add(ba));
  const TrainResult whole = train_step(in, dev);
  CHECK_TENSORS_CLOSE(ra.y, whole.y.slice(0, h), tol);
  CHECK_TENSORS_CLOSE(rb.y, whole.y.slice(h, N), tol);
  CHECK_TENSORS_CLOSE(ra.rm, whole.rm, tol);
  CHECK_TENSORS_CLOSE(rb.rv, whole.rv, tol);
  CHECK_TENSORS_CLOSE(ra.dx, whole.dx.slice(0, h), tol);
  CHECK_TENSORS_CLOSE(rb.dx, whole.dx.slice(h, N), tol);
  // Parameter gradients stay local: the ranks' dgamma add up to the whole batch's.
  Tensor dg = ra.dgamma.to(Device::cpu());
  const Tensor dgb = rb.dgamma.to(Device::cpu());
  for (int64_t i = 0; i < dg.numel(); ++i) dg.at<float>(i) += dgb.at<float>(i);
  CHECK_TENSORS_CLOSE(dg, whole.dgamma, tol);
  CHECK_FALSE(compare_tensors(ra.dgamma, whole.dgamma, tol).ok);
}
}  // namespace

TEST_CASE("batchnorm2d: the stats reducer sees local sums and turns half a batch into the whole (SyncBN)") {
  check_split_batch(make_bn({4, 3, 6, 7}, 321), Device::cpu(), Tolerance{1e-4, 1e-4});
  check_split_batch(make_bn({2, 5, 9, 4}, 322), Device::cpu(), Tolerance{1e-4, 1e-4});
}

namespace {
// SyncBN for real: N ranks of a LocalGroup (one thread each), each a BatchNorm2d module on its share of the
// batch with the reducer all_reduce_sum; against one module on the whole batch.
void check_local_group_syncbn(const BnInputs& in, int world, Device dev) {
  const int64_t per = in.x.size(0) / world;
  auto make = [&](ParamStore& store) {
    auto bn = std::make_unique<BatchNorm2d>(store, "bn", int(in.x.size(1)));
    store.materialize(dev);
    bn->reset_parameters();
    bn->weight()->value.copy_from(in.gamma.to(dev));
    bn->bias()->value.copy_from(in.beta.to(dev));
    bn->running_mean()->value.copy_from(in.rm.to(dev));
    bn->running_var()->value.copy_from(in.rv.to(dev));
    return bn;
  };
  ParamStore whole_store;
  auto whole = make(whole_store);
  const Tensor y = whole->forward(in.x.to(dev));
  const Tensor dx = whole->backward(in.r.to(dev));

  LocalGroup group(world);
  const size_t n = static_cast<size_t>(world);
  std::vector<Tensor> ys(n), dxs(n), rms(n), rvs(n), dgammas(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto comm = group.rank(r);
      try {
        ParamStore store;
        auto bn = make(store);
        bn->set_stats_reducer([&](Tensor& p) { comm->all_reduce_sum(p); });
        ys[size_t(r)] = bn->forward(in.x.slice(r * per, (r + 1) * per).to(dev));
        dxs[size_t(r)] = bn->backward(in.r.slice(r * per, (r + 1) * per).to(dev));
        rms[size_t(r)] = bn->running_mean()->value.to(Device::cpu());
        rvs[size_t(r)] = bn->running_var()->value.to(Device::cpu());
        Tensor g = bn->weight()->grad.clone();
        comm->all_reduce_sum(g);  // what the data-parallel gradient all-reduce does
        dgammas[size_t(r)] = g.to(Device::cpu());
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& e : errors) REQUIRE_MESSAGE(e.empty(), e);
  const Tolerance tol{1e-4, 1e-4};
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r << " of " << world);
    CHECK_TENSORS_CLOSE(ys[size_t(r)], y.slice(r * per, (r + 1) * per), tol);
    CHECK_TENSORS_CLOSE(dxs[size_t(r)], dx.slice(r * per, (r + 1) * per), tol);
    CHECK_TENSORS_CLOSE(rms[size_t(r)], whole->running_mean()->value, tol);
    CHECK_TENSORS_CLOSE(rvs[size_t(r)], whole->running_var()->value, tol);
    CHECK_TENSORS_CLOSE(dgammas[size_t(r)], whole->weight()->grad, tol);
  }
}
}  // namespace

TEST_CASE("BatchNorm2d: SyncBN over a LocalGroup (reducer = all_reduce_sum) equals BN over the whole batch") {
  check_local_group_syncbn(make_bn({4, 3, 5, 6}, 444), 2, Device::cpu());
  check_local_group_syncbn(make_bn({6, 5, 7, 3}, 445, DType::f32, 3.0), 3, Device::cpu());
}

// ---------------------------------------------------------------------------------------------
// Argument errors
// ---------------------------------------------------------------------------------------------

TEST_CASE("batchnorm2d: argument errors are refused with messages naming the layer and the shapes") {
  const BnInputs in = make_bn({2, 3, 4, 4}, 9);
  Tensor rm = in.rm.clone(), rv = in.rv.clone();
  const Tensor g4 = test::random_tensor({4}, 1);
  CHECK_THROWS_WITH_AS(batchnorm2d_forward_train(in.x, g4, in.beta, rm, rv, 1e-5, 0.1, nullptr),
                       doctest::Contains("batchnorm2d: input f32[2,3,4,4] NCHW cpu has 3 channels but weight (gamma) "
                                         "f32[4]"),
                       Error);
  CHECK_THROWS_WITH_AS(batchnorm2d_forward_eval(in.x, in.gamma, in.beta, g4, rv, 1e-5),
                       doctest::Contains("running_mean f32[4]"), Error);
  Tensor rm64 = rm.to_dtype(DType::f64);
  CHECK_THROWS_WITH_AS(batchnorm2d_forward_train(in.x, in.gamma, in.beta, rm64, rv, 1e-5, 0.1, nullptr),
                       doctest::Contains("differ in dtype"), Error);
  CHECK_THROWS_WITH_AS(batchnorm2d_forward_eval(in.x.to_dtype(DType::f16), in.gamma, in.beta, rm, rv, 1e-5),
                       doctest::Contains("CPU path takes f32 or f64"), Error);
  CHECK_THROWS_WITH_AS(batchnorm2d_forward_eval(in.x.to_layout(Layout::NHWC), in.gamma, in.beta, rm, rv, 1e-5),
                       doctest::Contains("NHWC"), Error);
  const Tensor one = test::random_tensor({1, 3, 1, 1}, 2);
  CHECK_THROWS_WITH_AS(batchnorm2d_forward_train(one, in.gamma, in.beta, rm, rv, 1e-5, 0.1, nullptr),
                       doctest::Contains("more than one value per channel"), Error);
  CHECK_THROWS_WITH_AS(
      batchnorm2d_forward_train(in.x, in.gamma, in.beta, rm, rv, 1e-5, 0.1, nullptr,
                                [](Tensor& p) { p = Tensor::zeros({2, 3}); }),
      doctest::Contains("the stats reducer must leave the partial sums a f32[3,3] tensor on cpu, got f32[2,3]"),
      Error);
  CHECK_THROWS_WITH_AS(batchnorm2d_backward(in.r, in.x, in.gamma, BatchNormSaved()),
                       doctest::Contains("backward before a training-mode forward"), Error);
  BatchNormSaved saved;
  batchnorm2d_forward_train(in.x, in.gamma, in.beta, rm, rv, 1e-5, 0.1, &saved);
  CHECK_THROWS_WITH_AS(batchnorm2d_backward(in.r.view({2, 3, 16, 1}), in.x, in.gamma, saved),
                       doctest::Contains("must match the input"), Error);
}

// ---------------------------------------------------------------------------------------------
// The module
// ---------------------------------------------------------------------------------------------

TEST_CASE("BatchNorm2d module: state_dict names, reset, train/eval forward, accumulating backward, errors") {
  ParamStore store;
  BatchNorm2d bn(store, "pretrained.bn1", 3);
  CHECK(store.find("pretrained.bn1.weight"));
  CHECK(store.find("pretrained.bn1.bias"));
  CHECK(store.find("pretrained.bn1.running_mean"));
  CHECK(store.find("pretrained.bn1.running_var"));
  const Param* nbt = store.find("pretrained.bn1.num_batches_tracked");
  REQUIRE(nbt);
  CHECK(nbt->dtype == DType::i64);
  CHECK(nbt->shape.empty());
  CHECK(store.parameter_count() == 6);
  CHECK(bn.eps() == 1e-5);
  CHECK(bn.momentum() == 0.1);
  store.materialize(Device::cpu());
  bn.reset_parameters();
  CHECK(bn.weight()->value.to_vector<float>() == std::vector<float>(3, 1.f));
  CHECK(bn.running_var()->value.to_vector<float>() == std::vector<float>(3, 1.f));
  const BnInputs in = make_bn({2, 3, 5, 5}, 61);
  bn.weight()->value.copy_from(in.gamma);
  bn.bias()->value.copy_from(in.beta);
  bn.running_mean()->value.copy_from(in.rm);
  bn.running_var()->value.copy_from(in.rv);

  CHECK_THROWS_WITH_AS(bn.backward(in.r), doctest::Contains("BatchNorm2d 'pretrained.bn1': backward without"), Error);
  const Tensor y = bn.forward(in.x);
  const BnRef want = naive_bn(in, 1e-5, 0.1);
  CHECK_TENSORS_CLOSE(y, want.y, kF32);
  CHECK_TENSORS_CLOSE(bn.running_mean()->value, want.rm, kF32);
  CHECK_TENSORS_CLOSE(bn.running_var()->value, want.rv, kF32);
  CHECK(bn.num_batches_tracked()->value.to_vector<int64_t>() == std::vector<int64_t>{1});
  const Tensor dx = bn.backward(in.r);
  CHECK_TENSORS_CLOSE(dx, want.dx, Tolerance{1e-4, 1e-4});
  CHECK_TENSORS_CLOSE(bn.weight()->grad, want.dgamma, Tolerance{1e-4, 1e-4});
  CHECK_TENSORS_CLOSE(bn.bias()->grad, want.dbeta, Tolerance{1e-4, 1e-4});
  // Same batch again: running stats move again, gradients add up.
  bn.forward(in.x);
  CHECK(bn.num_batches_tracked()->value.to_vector<int64_t>() == std::vector<int64_t>{2});
  bn.backward(in.r);
  Tensor twice = want.dbeta.clone();
  for (int64_t i = 0; i < 3; ++i) twice.at<double>(i) *= 2;
  CHECK_TENSORS_CLOSE(bn.bias()->grad, twice, Tolerance{1e-4, 1e-4});
  // Eval: running statistics, nothing cached, backward refused, counters untouched.
  bn.set_mode(Mode::eval);
  const Tensor ye = bn.forward(in.x);
  CHECK_TENSORS_CLOSE(ye, batchnorm2d_forward_eval(in.x, bn.weight()->value, bn.bias()->value,
                                                   bn.running_mean()->value, bn.running_var()->value, 1e-5),
                      Tolerance{0, 0});
  CHECK(bn.num_batches_tracked()->value.to_vector<int64_t>() == std::vector<int64_t>{2});
  CHECK_THROWS_WITH_AS(bn.backward(in.r), doctest::Contains("backward in eval mode"), Error);
  CHECK_THROWS_WITH_AS(bn.forward(test::random_tensor({2, 4, 5, 5}, 3)),
                       doctest::Contains("BatchNorm2d 'pretrained.bn1': batchnorm2d (eval): input f32[2,4,5,5]"), Error);
  // The hook is called with (3, C) forward and (2, C) backward sums.
  bn.set_mode(Mode::train);
  std::vector<Shape> seen;
  bn.set_stats_reducer([&](Tensor& p) { seen.push_back(p.shape()); });
  bn.forward(in.x);
  bn.backward(in.r);
  CHECK(seen == std::vector<Shape>{{3, 3}, {2, 3}});
}

// ---------------------------------------------------------------------------------------------
// GPU vs CPU
// ---------------------------------------------------------------------------------------------

GPU_TEST_CASE("batchnorm2d: CUDA train/eval forward, running stats and backward match the CPU reference") {
  const Device gpu = Device::cuda(0);
  uint64_t seed = 600;
  for (const Shape& s : shapes()) {
    INFO("shape " << shape_str(s));
    const BnInputs in = make_bn(s, seed += 10);
    const TrainResult want = train_step(in, Device::cpu());
    const TrainResult got = train_step(in, gpu);
    CHECK(got.y.device() == gpu);
    CHECK_TENSORS_CLOSE(got.y, want.y, Tolerance{5e-5, 1e-4});
    CHECK_TENSORS_CLOSE(got.rm, want.rm, kF32);
    CHECK_TENSORS_CLOSE(got.rv, want.rv, kF32);
    CHECK_TENSORS_CLOSE(got.dx, want.dx, Tolerance{1e-4, 1e-4});
    CHECK_TENSORS_CLOSE(got.dgamma, want.dgamma, Tolerance{2e-4, 1e-4});
    CHECK_TENSORS_CLOSE(got.dbeta, want.dbeta, Tolerance{2e-4, 1e-4});
    CHECK_TENSORS_CLOSE(batchnorm2d_forward_eval(in.x.to(gpu), in.gamma.to(gpu), in.beta.to(gpu), in.rm.to(gpu),
                                                 in.rv.to(gpu), 1e-5),
                        batchnorm2d_forward_eval(in.x, in.gamma, in.beta, in.rm, in.rv, 1e-5), kF32);
  }
  // Far from zero, in f32 on the GPU: still accurate.
  const BnInputs far = make_bn({4, 3, 17, 19}, 77, DType::f32, 1000.0);
  const BnRef want = naive_bn(far, 1e-5, 0.1);
  const TrainResult got = train_step(far, gpu);
  CHECK_TENSORS_CLOSE(got.y, want.y, Tolerance{1e-4, 1e-4});
  CHECK_TENSORS_CLOSE(got.rv, want.rv, Tolerance{1e-5, 1e-5});
}

GPU_TEST_CASE("batchnorm2d: CUDA at the grid limits: many blocks per channel, more planes than gridDim.y") {
  const Device gpu = Device::cuda(0);
  // N·H·W ≈ 1.2M per channel: the statistics run in several blocks per channel, reduced by finalize.
  // 40×2000 = 80,000 planes: the element-wise kernels' plane loop wraps past gridDim.y = 65,535.
  for (const Shape& s : {Shape{2, 3, 1024, 600}, Shape{40, 2000, 1, 3}}) {
    INFO("shape " << shape_str(s));
    const BnInputs in = make_bn(s, 905);
    const TrainResult want = train_step(in, Device::cpu());
    check_step_close(train_step(in, gpu), want,
                     {{1e-4, 1e-4}, {1e-5, 1e-5}, {1e-5, 1e-4}, {1e-4, 1e-4}, {1e-3, 1e-4}});
  }
}

GPU_TEST_CASE("batchnorm2d: an empty local batch under SyncBN runs on the GPU (the other ranks hold the values)") {
  const Device gpu = Device::cuda(0);
  const BnInputs in = make_bn({0, 3, 4, 5}, 906);
  // The "other ranks" contribute 7 values per channel: count 7, mean 1, sum of squared deviations 12.
  const StatsReducer others = [](Tensor& partial) {
    Tensor p = partial.to(Device::cpu());
    for (int64_t c = 0; c < 3; ++c) {
      p.at<float>(c) += 7.0f;       // Σ (x − shift), shift = running mean
      p.at<float>(3 + c) += 19.0f;  // Σ (x − shift)² = 12 + 7·1²
      p.at<float>(6 + c) += 7.0f;   // count
    }
    partial.copy_from(p);
  };
  const TrainResult got = train_step(in, gpu, 1e-5, 0.1, others, {});
  CHECK(got.y.numel() == 0);
  const std::vector<float> rv = got.rv.to_vector<float>(), rv0 = in.rv.to_vector<float>();
  for (int64_t c = 0; c < 3; ++c) CHECK(rv[size_t(c)] == doctest::Approx(0.9 * rv0[size_t(c)] + 0.1 * 2.0).epsilon(1e-5));
}

SILICON_TEST_CASE("batchnorm2d: SyncBN through a one-rank NCCL communicator (device reduction, stream order) = local BN") {
  // The reducer all-reduces on NCCL's own stream: it must wait for the partial sums the compute stream
  // is still producing, and the normalisation must wait for the reduction. With one rank the values are
  // unchanged, so anything out of order shows as a mismatch with plain local BN. (The mean, not the sum:
  // NCCL skips an in-place one-rank sum, while the mean runs a scaling kernel on its stream.)
  std::unique_ptr<Communicator> comm = make_nccl_communicator(nccl_unique_id(), 0, 1, 0, 60);
  const StatsReducer nccl_sum = [&comm](Tensor& partial) { comm->all_reduce_mean(partial); };
  for (const Shape& s : {Shape{4, 3, 37, 41}, Shape{2, 6, 64, 96}}) {
    INFO("shape " << shape_str(s));
    const BnInputs in = make_bn(s, 907);
    const TrainResult local = train_step(in, Device::cuda(0));
    check_step_close(train_step(in, Device::cuda(0), 1e-5, 0.1, nccl_sum, nccl_sum), local,
                     {{1e-4, 1e-4}, {1e-5, 1e-5}, {1e-5, 1e-4}, {1e-4, 1e-4}, {2e-4, 1e-4}});
  }
}

GPU_TEST_CASE("batchnorm2d: the stats reducer on the GPU turns half a batch into the whole (SyncBN)") {
  check_split_batch(make_bn({4, 3, 6, 7}, 331), Device::cuda(0), Tolerance{1e-4, 1e-4});
  check_split_batch(make_bn({6, 5, 16, 12}, 332), Device::cuda(0), Tolerance{1e-4, 1e-4});
}

GPU_TEST_CASE("BatchNorm2d module on the GPU: running stats, num_batches_tracked, gradients") {
  ParamStore store;
  BatchNorm2d bn(store, "bn", 5);
  store.materialize(Device::cuda(0));
  bn.reset_parameters();
  const BnInputs in = make_bn({3, 5, 7, 9}, 71);
  bn.weight()->value.copy_from(in.gamma);
  bn.bias()->value.copy_from(in.beta);
  bn.running_mean()->value.copy_from(in.rm);
  bn.running_var()->value.copy_from(in.rv);
  const Tensor y = bn.forward(in.x.to(Device::cuda(0)));
  const BnRef want = naive_bn(in, 1e-5, 0.1);
  CHECK_TENSORS_CLOSE(y, want.y, Tolerance{5e-5, 1e-4});
  CHECK_TENSORS_CLOSE(bn.running_var()->value, want.rv, kF32);
  CHECK(bn.num_batches_tracked()->value.to_vector<int64_t>() == std::vector<int64_t>{1});
  const Tensor dx = bn.backward(in.r.to(Device::cuda(0)));
  CHECK_TENSORS_CLOSE(dx, want.dx, Tolerance{1e-4, 1e-4});
  CHECK_TENSORS_CLOSE(bn.weight()->grad, want.dgamma, Tolerance{2e-4, 1e-4});
  CHECK_TENSORS_CLOSE(bn.bias()->grad, want.dbeta, Tolerance{2e-4, 1e-4});
}

// ---------------------------------------------------------------------------------------------
// PyTorch parity
// ---------------------------------------------------------------------------------------------

TEST_CASE("batchnorm2d: matches torch.nn.BatchNorm2d in train and eval mode (outputs, grads, running stats)") {
  struct TorchCase {
    std::string name;
    Shape shape;
    bool train;
    double momentum, eps;
  };
  const std::vector<TorchCase> cases = {
      {"train_odd", {2, 3, 5, 7}, true, 0.1, 1e-5},      {"train_batch1", {1, 5, 9, 11}, true, 0.1, 1e-5},
      {"train_1x1", {6, 4, 1, 1}, true, 0.1, 1e-5},      {"train_mom03", {3, 3, 8, 8}, true, 0.3, 1e-3},
      {"train_big", {4, 3, 37, 41}, true, 0.1, 1e-5},    {"eval_odd", {2, 3, 5, 7}, false, 0.1, 1e-5},
      {"eval_batch1", {1, 5, 4, 3}, false, 0.1, 1e-5},
  };
  const std::string dir = test::temp_dir("bn-torch");
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> meta;
  std::vector<BnInputs> inputs;
  uint64_t seed = 800;
  for (const TorchCase& c : cases) {
    inputs.push_back(make_bn(c.shape, seed += 10));
    const BnInputs& in = inputs.back();
    const std::string p = "bn." + c.name;
    tensors[p + ".x"] = in.x;
    tensors[p + ".weight"] = in.gamma;
    tensors[p + ".bias"] = in.beta;
    tensors[p + ".running_mean"] = in.rm;
    tensors[p + ".running_var"] = in.rv;
    tensors[p + ".r"] = in.r;
    char cfg[128];
    std::snprintf(cfg, sizeof cfg, "bn %s %.17g %.17g", c.train ? "train" : "eval", c.momentum, c.eps);
    meta[p] = cfg;
  }
  write_safetensors(dir + "/in.safetensors", tensors, meta);
  std::string out;
  const int rc = test::run_command(test::python() + " " + test::source_path("scripts/torch_parity_convbn.py") + " " +
                                       dir + "/in.safetensors " + dir + "/out.safetensors",
                                   &out);
  INFO(out);
  REQUIRE(rc == 0);
  const SafetensorsFile res = read_safetensors(dir + "/out.safetensors");
  for (size_t i = 0; i < cases.size(); ++i) {
    const TorchCase& c = cases[i];
    const BnInputs& in = inputs[i];
    INFO("case " << c.name);
    const std::string p = "bn." + c.name;
    REQUIRE(res.tensors.count(p + ".y"));
    if (c.train) {
      const TrainResult got = train_step(in, Device::cpu(), c.eps, c.momentum);
      CHECK_TENSORS_CLOSE(got.y, res.tensors.at(p + ".y"), kF32);
      CHECK_TENSORS_CLOSE(got.dx, res.tensors.at(p + ".dx"), Tolerance{5e-5, 1e-4});
      CHECK_TENSORS_CLOSE(got.dgamma, res.tensors.at(p + ".dweight"), Tolerance{5e-5, 1e-4});
      CHECK_TENSORS_CLOSE(got.dbeta, res.tensors.at(p + ".dbias"), Tolerance{5e-5, 1e-4});
      CHECK_TENSORS_CLOSE(got.rm, res.tensors.at(p + ".running_mean"), kF32);
      CHECK_TENSORS_CLOSE(got.rv, res.tensors.at(p + ".running_var"), kF32);
      CHECK(res.tensors.at(p + ".num_batches_tracked").item() == 1.0);
    } else {
      CHECK_TENSORS_CLOSE(batchnorm2d_forward_eval(in.x, in.gamma, in.beta, in.rm, in.rv, c.eps),
                          res.tensors.at(p + ".y"), kF32);
      // torch leaves the running statistics alone in eval mode.
      CHECK_TENSORS_CLOSE(res.tensors.at(p + ".running_var"), in.rv, Tolerance{0, 0});
    }
  }
}

GPU_TEST_CASE("batchnorm2d: the CUDA path refuses f64 and mixed devices by name") {
  const Device gpu = Device::cuda(0);
  const BnInputs in = make_bn({2, 3, 4, 4}, 5);
  auto g = [&](const Tensor& t) { return t.to(gpu).to_dtype(DType::f64); };
  CHECK_THROWS_WITH_AS(batchnorm2d_forward_eval(g(in.x), g(in.gamma), g(in.beta), g(in.rm), g(in.rv), 1e-5),
                       doctest::Contains("CUDA path takes f32"), Error);
  Tensor rm = in.rm.clone(), rv = in.rv.clone();
  CHECK_THROWS_WITH_AS(batchnorm2d_forward_train(in.x.to(gpu), in.gamma, in.beta, rm, rv, 1e-5, 0.1, nullptr),
                       doctest::Contains("batchnorm2d"), Error);
}
