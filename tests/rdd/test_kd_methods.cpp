// The comparison KD methods (rdd/kd_methods.h), their building blocks (rdd/kd_ops.h, layers/matmul.h) and
// their distillation terms (rdd/kd_terms.h): closed forms, finite differences (f64), GPU vs CPU.
#include <cmath>
#include <string>
#include <vector>

#include "harness.h"
#include "layers/matmul.h"
#include "rdd/adversarial.h"
#include "rdd/cirkd.h"
#include "rdd/distill.h"
#include "rdd/kd_methods.h"
#include "rdd/kd_ops.h"
#include "rdd/kd_terms.h"
#include "rdd/pixel_ops.h"

using namespace rdd;
using namespace rdd::method;

namespace {

Tensor f64(const Shape& shape, uint64_t seed, double scale = 1.0) {
  return test::random_tensor(shape, seed, -scale, scale, DType::f64);
}

void check_fd(const std::string& what, Tensor& x, const std::function<double()>& loss, const Tensor& analytic,
              double eps = 1e-6) {
  test::check_gradient(what, x, loss, analytic, eps, {1e-8, 1e-5});
}

bool close(double a, double b, double rtol = 1e-5) { return std::abs(a - b) <= rtol * std::max(1.0, std::abs(b)); }

}  // namespace

TEST_CASE("batched_gemm: transposes, shared operands and beta against naive loops (f64)") {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      const int64_t batch = 3, m = 4, n = 5, k = 7;
      const Tensor a = f64({batch, m * k}, 1), b = f64({k * n}, 2);  // b shared (stride 0)
      Tensor c = f64({batch, m * n}, 3);
      const Tensor c0 = c.clone();
      layers::batched_gemm(a, b, c, {.batch = batch, .m = m, .n = n, .k = k, .trans_a = ta, .trans_b = tb,
                                     .stride_a = m * k, .stride_b = 0, .stride_c = m * n},
                           0.5, 2.0);
      const double* pa = a.data<double>();
      const double* pb = b.data<double>();
      for (int64_t i = 0; i < batch; ++i)
        for (int64_t r = 0; r < m; ++r)
          for (int64_t q = 0; q < n; ++q) {
            double s = 0;
            for (int64_t j = 0; j < k; ++j)
              s += pa[i * m * k + (ta ? j * m + r : r * k + j)] * pb[tb ? q * k + j : j * n + q];
            const double want = 0.5 * s + 2.0 * c0.data<double>()[i * m * n + r * n + q];
            CHECK(c.data<double>()[i * m * n + r * n + q] == doctest::Approx(want).epsilon(1e-12));
          }
    }
  }
  Tensor small = f64({4}, 4);
  const std::string msg = test::error_message([&] {
    layers::batched_gemm(small, small, small, {.batch = 1, .m = 2, .n = 2, .k = 3});
  });
  CHECK(msg.find("does not fit") != std::string::npos);
}

TEST_CASE("kd ops: normalisation, softmax, Pearson rows, pooling and nearest labels (closed forms)") {
  // F.normalize of (3, 4) → (0.6, 0.8); a zero row stays zero.
  const Tensor x = Tensor::from_vector<double>({3, 4, 0, 0}, {2, 2});
  const L2Normalized n = l2_normalize_rows(x, {2, 2, 1});
  CHECK(n.y.data<double>()[0] == doctest::Approx(0.6));
  CHECK(n.y.data<double>()[1] == doctest::Approx(0.8));
  CHECK(n.y.data<double>()[2] == 0);
  // Pearson of a row with an affine image of itself is 1, with its negation −1.
  const Tensor a = Tensor::from_vector<double>({1, 2, 4, 8}, {1, 4});
  const Tensor b = Tensor::from_vector<double>({3, 5, 9, 17}, {1, 4});
  CHECK(pearson_rows(a, b, {1, 4, 1}, 1e-8, 1, false).r.data<double>()[0] == doctest::Approx(1).epsilon(1e-9));
  const Tensor negated = Tensor::from_vector<double>({-1, -2, -4, -8}, {1, 4});
  CHECK(pearson_rows(a, negated, {1, 4, 1}, 1e-8, 1, false).r.data<double>()[0] == doctest::Approx(-1).epsilon(1e-9));
  // 2x2 ceil average pooling of a 3x3 plane: windows clipped to the input.
  const Tensor p = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const std::vector<double> pooled = avg_pool_ceil(p, 2).to_vector<double>();
  CHECK(pooled == std::vector<double>{3, 4.5, 7.5, 9});
  // PyTorch's nearest: 5 → 2 picks rows floor(0·2.5) = 0 and floor(1·2.5) = 2.
  std::vector<int32_t> lv(5 * 3);
  for (int i = 0; i < 15; ++i) lv[size_t(i)] = i;
  const std::vector<int32_t> near = nearest_labels(Tensor::from_vector(lv, {1, 5, 3}), 2, 2).to_vector<int32_t>();
  CHECK(near == std::vector<int32_t>{0, 1, 6, 7});
  // Channel mean of squares.
  const Tensor f = Tensor::from_vector<double>({1, 2, 3, 4}, {1, 2, 1, 2});  // c0 = (1, 2), c1 = (3, 4)
  CHECK(channel_mean_square(f).to_vector<double>() == std::vector<double>{5, 10});
}

TEST_CASE("kd ops: backward passes match finite differences (f64)") {
  const RowView v{2, 5, 3};
  Tensor x = f64({2, 5, 3}, 11, 2.0);
  const Tensor w = f64({2, 5, 3}, 12);
  const Tensor other = f64({2, 5, 3}, 13);
  auto dot_w = [&](const Tensor& y) { return dot_all(y, w); };
  check_fd("l2 normalize", x, [&] { return dot_w(l2_normalize_rows(x, v).y); },
           l2_normalize_rows_backward(w, l2_normalize_rows(x, v), v));
  check_fd("softmax rows", x, [&] { return dot_w(softmax_rows(x, v, 0.5)); },
           softmax_rows_backward(w, softmax_rows(x, v, 0.5), v, 0.5));
  check_fd("pearson rows", x, [&] { return 0.7 * sum_all(pearson_rows(x, other, v, 1e-8, 1, false).r); },
           pearson_rows(x, other, v, 1e-8, 0.7, true).grad);
  Tensor f = f64({2, 3, 4, 5}, 14);
  const Tensor da = f64({2, 20}, 15);
  check_fd("channel mean square", f, [&] { return dot_all(channel_mean_square(f), da); },
           channel_mean_square_backward(da, f));
  Tensor img = f64({1, 2, 5, 3}, 16);
  const Tensor dy = f64({1, 2, 3, 2}, 17);
  check_fd("avg pool ceil", img, [&] { return dot_all(avg_pool_ceil(img, 2), dy); }, avg_pool_ceil_backward(dy, 5, 3, 2));
}

TEST_CASE("AT, FitNet, CWD feature, SKD, IFVD, DSD, DIST: zero for identical inputs, gradients match finite differences (f64)") {
  const Tensor labels = test::random_labels({2, 21, 27}, 4, 31, 0.2);
  Tensor fs = f64({2, 3, 5, 6}, 32), ft = f64({2, 4, 5, 6}, 33);
  Tensor w = f64({4, 3, 1, 1}, 34, 0.5);

  SUBCASE("AT") {
    CHECK(std::abs(attention_transfer(ft, ft).loss) < 1e-15);
    const FeatureLoss l = attention_transfer(fs, ft);
    CHECK(l.loss > 0);
    check_fd("AT dL/dfs", fs, [&] { return attention_transfer(fs, ft).loss; }, l.grad);
  }
  SUBCASE("FitNet") {
    const FeatureLoss l = fitnet(fs, ft, w);
    check_fd("FitNet dL/dfs", fs, [&] { return fitnet(fs, ft, w).loss; }, l.grad);
    check_fd("FitNet dL/dW", w, [&] { return fitnet(fs, ft, w).loss; }, l.grad_w);
  }
  SUBCASE("CWD feature") {
    for (double tau : {1.0, 4.0}) {
      const FeatureLoss l = cwd_feature(fs, ft, w, tau);
      check_fd("CWD feature dL/dfs", fs, [&] { return cwd_feature(fs, ft, w, tau).loss; }, l.grad);
      check_fd("CWD feature dL/dW", w, [&] { return cwd_feature(fs, ft, w, tau).loss; }, l.grad_w);
    }
    CHECK(std::abs(cwd_feature(ft, ft, Tensor(), 4.0).loss) < 1e-12);
    CHECK(test::error_message([&] { cwd_feature(fs, ft, Tensor(), 4.0); }).find("adapter") != std::string::npos);
  }
  SUBCASE("SKD (odd sizes: ceil-mode pooling)") {
    CHECK(std::abs(structural_kd(ft, ft).loss) < 1e-15);
    Tensor odd = f64({2, 3, 5, 7}, 35);
    const Tensor odd_t = f64({2, 6, 5, 7}, 36);
    const FeatureLoss l = structural_kd(odd, odd_t);
    check_fd("SKD dL/dfs", odd, [&] { return structural_kd(odd, odd_t).loss; }, l.grad);
  }
  SUBCASE("IFVD (class centres, ignored pixels, a class absent)") {
    CHECK(std::abs(ifvd(ft, ft, labels, 4).loss) < 1e-15);
    const FeatureLoss l = ifvd(fs, ft, labels, 5);  // class 4 never appears
    CHECK(l.loss > 0);
    check_fd("IFVD dL/dfs", fs, [&] { return ifvd(fs, ft, labels, 5).loss; }, l.grad);
    // Every pixel ignored: every cosine is 1 on both sides.
    const Tensor ignored = Tensor::full({2, 21, 27}, -1, DType::i32);
    const FeatureLoss z = ifvd(fs, ft, ignored, 4);
    CHECK(z.loss == 0);
    for (double g : z.grad.to_vector<double>()) CHECK(g == 0);
  }
  SUBCASE("DSD") {
    Tensor sa = f64({2, 4, 5, 7}, 37), sf = f64({2, 3, 5, 7}, 38), sm = f64({2, 4, 5, 7}, 39);
    const Tensor ta = f64({2, 4, 5, 7}, 40), tf = f64({2, 6, 5, 7}, 41), tm = f64({2, 4, 5, 7}, 42);
    const DsdLoss z = double_similarity_kd(sa, sf, sm, sa, sf, sm, 4.0);
    CHECK(std::abs(z.psd) < 1e-15);
    CHECK(std::abs(z.csd) < 1e-15);
    const DsdLoss l = double_similarity_kd(sa, sf, sm, ta, tf, tm, 4.0);
    CHECK(l.psd > 0);
    CHECK(l.csd > 0);
    auto total = [&] {
      const DsdLoss d = double_similarity_kd(sa, sf, sm, ta, tf, tm, 4.0);
      return d.psd + d.csd;
    };
    check_fd("DSD d/d aux", sa, total, l.grad_aux);
    check_fd("DSD d/d feature", sf, total, l.grad_feature);
    check_fd("DSD d/d main", sm, total, l.grad_main);
    // The λs scale the gradients only.
    const DsdLoss k = double_similarity_kd(sa, sf, sm, ta, tf, tm, 4.0, 1000, 10);
    CHECK(k.psd == doctest::Approx(l.psd).epsilon(1e-12));
    Tensor want = Tensor::zeros(sm.shape(), DType::f64);
    axpy(want, l.grad_main, 1000);
    axpy(want, l.grad_main_csd, 10 - 1000);
    CHECK_TENSORS_CLOSE(k.grad_main, want, Tolerance{1e-9, 1e-9});
  }
  SUBCASE("DIST") {
    Tensor s = f64({2, 5, 3, 4}, 43, 3.0);
    const Tensor t = f64({2, 5, 3, 4}, 44, 3.0);
    CHECK(std::abs(dist_kd(t, t, 1, 1, 1).loss) < 1e-7);
    for (double tau : {1.0, 4.0}) {
      const DistLoss l = dist_kd(s, t, 1.0, 2.0, tau);
      CHECK(l.loss == doctest::Approx(tau * tau * (l.inter + 2 * l.intra)).epsilon(1e-12));
      check_fd("DIST dL/ds", s, [&] { return dist_kd(s, t, 1.0, 2.0, tau).loss; }, l.grad);
    }
  }
}

TEST_CASE("KD terms: weights scale the gradients, adapters get theirs, missing slots are named") {
  const NetOutputs s{f64({2, 4, 3, 5}, 51, 3.0).to_dtype(DType::f32), f64({2, 4, 3, 5}, 52).to_dtype(DType::f32),
                     f64({2, 3, 3, 5}, 53).to_dtype(DType::f32)};
  const NetOutputs t{f64({2, 4, 3, 5}, 54, 3.0).to_dtype(DType::f32), f64({2, 4, 3, 5}, 55).to_dtype(DType::f32),
                     f64({2, 6, 3, 5}, 56).to_dtype(DType::f32)};
  const Tensor labels = test::random_labels({2, 24, 40}, 4, 57, 0.1);
  Distiller d;
  d.add(std::make_unique<FitNetTerm>(d.params(), 2.0, 3, 6));
  d.add(std::make_unique<AttentionTerm>(5.0));
  d.materialize(Device::cpu(), 7);
  REQUIRE(d.params().find("fitnet.conv.weight"));
  CHECK(d.has_parameters());
  d.params().zero_grad();
  StudentGrads g;
  const LossTerms terms = d.compute({}, s, t, labels, g);
  CHECK(terms.total() == doctest::Approx(2 * terms.value("fitnet") + 5 * terms.value("at")).epsilon(1e-12));
  const Tensor w = d.params().at("fitnet.conv.weight").value;
  const FeatureLoss f = fitnet(s.feature, t.feature, w);
  const FeatureLoss a = attention_transfer(s.feature, t.feature);
  Tensor want = Tensor::zeros(s.feature.shape());
  axpy(want, f.grad, 2.0);
  axpy(want, a.grad, 5.0);
  CHECK_TENSORS_CLOSE(g.feature, want, Tolerance{1e-7, 1e-6});
  Tensor want_w = Tensor::zeros(w.shape());
  axpy(want_w, f.grad_w, 2.0);
  CHECK_TENSORS_CLOSE(d.params().at("fitnet.conv.weight").grad, want_w, Tolerance{1e-7, 1e-6});
  CHECK(d.last_term_ms().size() == 2);
  // The default Conv2d initialisation is deterministic in the seed.
  Distiller e;
  e.add(std::make_unique<FitNetTerm>(e.params(), 1.0, 3, 6));
  e.materialize(Device::cpu(), 7);
  CHECK_TENSORS_CLOSE(e.params().at("fitnet.conv.weight").value, w, Tolerance{0, 0});
  // DSD without a student aux head.
  DsdTerm dsd(1000, 10, 4);
  NetOutputs no_aux = s;
  no_aux.aux = Tensor();
  LossTerms lt;
  StudentGrads g2;
  CHECK(test::error_message([&] { dsd.compute({}, no_aux, t, labels, lt, g2); }).find("aux") != std::string::npos);
}

GPU_TEST_CASE("KD methods on the GPU match the CPU reference (values and gradients, odd sizes, batch 1)") {
  const Device g = Device::cuda(0);
  const Tolerance tol{2e-6, 2e-4};
  auto gpu = [&](const Tensor& t) { return t.to(g); };
  auto cpu = [](const Tensor& t) { return t.to(Device::cpu()); };
  for (int64_t n : {1, 2}) {
    CAPTURE(n);
    const Tensor fs = test::random_tensor({n, 3, 5, 7}, 61), ft = test::random_tensor({n, 6, 5, 7}, 62);
    const Tensor w = test::random_tensor({6, 3, 1, 1}, 63, -0.5, 0.5);
    const Tensor labels = test::random_labels({n, 37, 53}, 4, 64, 0.2);
    {
      const FeatureLoss c = attention_transfer(fs, ft), d = attention_transfer(gpu(fs), gpu(ft));
      CHECK(close(d.loss, c.loss));
      CHECK_TENSORS_CLOSE(cpu(d.grad), c.grad, tol);
    }
    {
      const FeatureLoss c = fitnet(fs, ft, w), d = fitnet(gpu(fs), gpu(ft), gpu(w));
      CHECK(close(d.loss, c.loss));
      CHECK_TENSORS_CLOSE(cpu(d.grad), c.grad, tol);
      CHECK_TENSORS_CLOSE(cpu(d.grad_w), c.grad_w, tol);
    }
    {
      const FeatureLoss c = cwd_feature(fs, ft, w, 4.0), d = cwd_feature(gpu(fs), gpu(ft), gpu(w), 4.0);
      CHECK(close(d.loss, c.loss));
      CHECK_TENSORS_CLOSE(cpu(d.grad), c.grad, tol);
      CHECK_TENSORS_CLOSE(cpu(d.grad_w), c.grad_w, tol);
    }
    {
      const FeatureLoss c = structural_kd(fs, ft), d = structural_kd(gpu(fs), gpu(ft));
      CHECK(close(d.loss, c.loss));
      CHECK_TENSORS_CLOSE(cpu(d.grad), c.grad, tol);
    }
    {
      const FeatureLoss c = ifvd(fs, ft, labels, 5), d = ifvd(gpu(fs), gpu(ft), gpu(labels), 5);
      CHECK(close(d.loss, c.loss));
      CHECK_TENSORS_CLOSE(cpu(d.grad), c.grad, tol);
    }
    {
      const Tensor sa = test::random_tensor({n, 4, 5, 7}, 65, -3, 3), sm = test::random_tensor({n, 4, 5, 7}, 66, -3, 3);
      const Tensor ta = test::random_tensor({n, 4, 5, 7}, 67, -3, 3), tm = test::random_tensor({n, 4, 5, 7}, 68, -3, 3);
      const DsdLoss c = double_similarity_kd(sa, fs, sm, ta, ft, tm, 4.0);
      const DsdLoss d = double_similarity_kd(gpu(sa), gpu(fs), gpu(sm), gpu(ta), gpu(ft), gpu(tm), 4.0);
      CHECK(close(d.psd, c.psd));
      CHECK(close(d.csd, c.csd));
      CHECK_TENSORS_CLOSE(cpu(d.grad_aux), c.grad_aux, tol);
      CHECK_TENSORS_CLOSE(cpu(d.grad_feature), c.grad_feature, tol);
      CHECK_TENSORS_CLOSE(cpu(d.grad_main), c.grad_main, tol);
      CHECK_TENSORS_CLOSE(cpu(d.grad_main_csd), c.grad_main_csd, tol);
      const DistLoss e = dist_kd(sm, tm, 1, 1, 1), f = dist_kd(gpu(sm), gpu(tm), 1, 1, 1);
      CHECK(close(f.loss, e.loss));
      CHECK_TENSORS_CLOSE(cpu(f.grad), e.grad, tol);
    }
  }
  // Each op on its own, tight (kd_ops.h), on shapes that are not multiples of anything.
  const Tolerance tight{1e-6, 1e-5};
  const Tensor x = test::random_tensor({2, 5, 7}, 72, -2, 2), y = test::random_tensor({2, 5, 7}, 73, -2, 2);
  for (const RowView v : {RowView{2, 5, 7}, RowView{10, 7, 1}, RowView{1, 70, 1}}) {
    const L2Normalized nc = l2_normalize_rows(x, v), nd = l2_normalize_rows(gpu(x), v);
    CHECK_TENSORS_CLOSE(cpu(nd.y), nc.y, tight);
    CHECK_TENSORS_CLOSE(cpu(l2_normalize_rows_backward(gpu(y), nd, v)), l2_normalize_rows_backward(y, nc, v), tight);
    const Tensor pc = softmax_rows(x, v, 0.25), pd = softmax_rows(gpu(x), v, 0.25);
    CHECK_TENSORS_CLOSE(cpu(pd), pc, tight);
    CHECK_TENSORS_CLOSE(cpu(softmax_rows_backward(gpu(y), pd, v, 0.25)), softmax_rows_backward(y, pc, v, 0.25), tight);
    const PearsonRows rc = pearson_rows(x, y, v, 1e-8, 0.3, true), rd = pearson_rows(gpu(x), gpu(y), v, 1e-8, 0.3, true);
    CHECK_TENSORS_CLOSE(cpu(rd.r), rc.r, tight);
    CHECK_TENSORS_CLOSE(cpu(rd.grad), rc.grad, tight);
  }
  CHECK_TENSORS_CLOSE(cpu(swap_leading_dims(gpu(x), 2, 5, 7)), swap_leading_dims(x, 2, 5, 7), Tolerance{0, 0});
  const Tensor img = test::random_tensor({2, 3, 7, 5}, 74), dimg = test::random_tensor({2, 3, 4, 3}, 75);
  CHECK_TENSORS_CLOSE(cpu(avg_pool_ceil(gpu(img), 2)), avg_pool_ceil(img, 2), tight);
  CHECK_TENSORS_CLOSE(cpu(avg_pool_ceil_backward(gpu(dimg), 7, 5, 2)), avg_pool_ceil_backward(dimg, 7, 5, 2), tight);
  const Tensor da = test::random_tensor({2, 35}, 76);
  CHECK_TENSORS_CLOSE(cpu(channel_mean_square(gpu(img))), channel_mean_square(img), tight);
  CHECK_TENSORS_CLOSE(cpu(channel_mean_square_backward(gpu(da), gpu(img))), channel_mean_square_backward(da, img), tight);
  const Tensor lab = test::random_labels({2, 29, 31}, 6, 77, 0.2);
  CHECK_TENSORS_CLOSE(cpu(nearest_labels(gpu(lab), 4, 9)), nearest_labels(lab, 4, 9), Tolerance{0, 0});
  const Tensor flat = nearest_labels(lab, 5, 7).view({2, 35});
  CHECK_TENSORS_CLOSE(cpu(one_hot_pixels(gpu(flat), 6, DType::f32)), one_hot_pixels(flat, 6, DType::f32), Tolerance{0, 0});
  const Tensor cnt = test::random_tensor({2, 6}, 78, 0, 3);
  const Tensor cols = test::random_tensor({2, 4, 6}, 79);
  CHECK_TENSORS_CLOSE(cpu(divide_columns(gpu(cols), gpu(cnt), 1e-6)), divide_columns(cols, cnt, 1e-6), tight);
  const Tensor f3 = test::random_tensor({2, 3, 35}, 80), c3 = test::random_tensor({2, 3, 35}, 81);
  const Tensor dc3 = test::random_tensor({2, 35}, 82);
  CHECK_TENSORS_CLOSE(cpu(center_cosine(gpu(f3), gpu(c3), gpu(flat), 6)), center_cosine(f3, c3, flat, 6), tight);
  const CenterCosineGrads gc = center_cosine_backward(dc3, f3, c3, flat, 6);
  const CenterCosineGrads gd = center_cosine_backward(gpu(dc3), gpu(f3), gpu(c3), gpu(flat), 6);
  CHECK_TENSORS_CLOSE(cpu(gd.gf), gc.gf, tight);
  CHECK_TENSORS_CLOSE(cpu(gd.gc), gc.gc, tight);
  // The GEMM itself, with a shared operand and accumulation.
  const Tensor a = test::random_tensor({3, 4 * 7}, 69), b = test::random_tensor({7 * 5}, 70);
  Tensor c = test::random_tensor({3, 4 * 5}, 71);
  Tensor dc = gpu(c);
  const layers::GemmShape s{.batch = 3, .m = 4, .n = 5, .k = 7, .trans_a = false, .trans_b = true, .stride_a = 28,
                            .stride_b = 0, .stride_c = 20};
  layers::batched_gemm(a, b, c, s, 0.5, 1.0);
  layers::batched_gemm(gpu(a), gpu(b), dc, s, 0.5, 1.0);
  CHECK_TENSORS_CLOSE(cpu(dc), c, Tolerance{1e-6, 1e-5});
}

TEST_CASE("CIRKD: mini-batch and memory contrasts match finite differences (f64); no anchors gives 0") {
  Tensor fs = f64({2, 3, 3, 4}, 91, 1.0);
  const Tensor ft = f64({2, 5, 3, 4}, 92, 1.0);
  for (double tau : {0.1, 1.0}) {
    CAPTURE(tau);
    const CirkdMiniBatch m = cirkd_minibatch(fs, ft, tau);
    CHECK(m.loss > 0);
    check_fd("mini-batch d/d f_s", fs, [&] { return cirkd_minibatch(fs, ft, tau).loss; }, m.grad, 1e-7);
  }
  CHECK(std::abs(cirkd_minibatch(ft, ft, 0.1).loss) < 1e-12);
  Tensor sp = f64({2, 5, 3, 4}, 93);
  const Tensor labels = test::random_labels({2, 12}, 3, 94, 0.25);
  const Tensor kp = l2_normalize_rows(f64({9, 5}, 95), {9, 5, 1}).y, kr = l2_normalize_rows(f64({6, 5}, 96), {6, 5, 1}).y;
  const CirkdMemory mem = cirkd_memory_contrast(sp, ft, labels, kp, kr, 0.1, 2.0, -1, 0.3, 0.7);
  CHECK(mem.anchors > 0);
  CHECK(mem.anchors < 24);
  check_fd("memory d/d s_proj", sp, [&] {
    const CirkdMemory r = cirkd_memory_contrast(sp, ft, labels, kp, kr, 0.1, 2.0, -1, 0.3, 0.7);
    return 0.3 * r.pixel + 0.7 * r.region;
  }, mem.grad, 1e-7);
  const Tensor ignored = Tensor::full({2, 12}, -1, DType::i32);
  const CirkdMemory none = cirkd_memory_contrast(sp, ft, ignored, kp, kr, 0.1, 1.0, -1);
  CHECK(none.pixel == 0);
  CHECK(none.region == 0);
  for (double g : none.grad.to_vector<double>()) CHECK(g == 0);
}

TEST_CASE("CIRKD enqueue: region means at the pointer, pixel rows in source order, wrap-around, released vs class fill") {
  // One image of 2×3 pixels, 2 classes: class 0 at positions 1, 4; class 1 at 0, 2, 5; position 3 ignored.
  const std::vector<float> feat = {3, 0, 0, 4, 1, 0,   // channel 0 (positions 0..5)
                                   4, 1, 2, 0, 0, 1};  // channel 1
  const Tensor t = Tensor::from_vector(feat, {1, 2, 2, 3});
  const Tensor y = Tensor::from_vector<int32_t>({1, 0, 1, -1, 0, 1}, {1, 6});
  for (PixelQueueFill fill : {PixelQueueFill::released, PixelQueueFill::klass}) {
    CAPTURE(pixel_queue_fill_name(fill));
    CirkdOptions o;
    o.num_classes = 2;
    o.fill = fill;
    Tensor pq = Tensor::zeros({2, 4, 2}), rq = Tensor::zeros({2, 3, 2});
    Tensor pp = Tensor::from_vector<int64_t>({1, 2}, {2}), rp = Tensor::from_vector<int64_t>({2, 0}, {2});
    cirkd_enqueue(t, y, pq, pp, rq, rp, o, 1, 2);
    // Pointers: class 0 had 1 + 2 = 3 < 4 → 3; class 1: 2 + 3 ≥ 4 → the last 3 rows, pointer 0. Regions + 1 mod 3.
    CHECK(pp.to_vector<int64_t>() == std::vector<int64_t>{3, 0});
    CHECK(rp.to_vector<int64_t>() == std::vector<int64_t>{0, 1});
    auto unit = [](float a, float b) {
      const float n = std::sqrt(a * a + b * b);
      return std::vector<float>{a / n, b / n};
    };
    auto row = [](const Tensor& q, int64_t c, int64_t r) {
      const std::vector<float> v = q.to_vector<float>();
      const int64_t rows = q.size(1);
      return std::vector<float>{v[size_t((c * rows + r) * 2)], v[size_t((c * rows + r) * 2 + 1)]};
    };
    // Region of class 0: mean of the unit features at positions 1, 4 = ((0,1) + (1,0))/2, normalised.
    const std::vector<float> r0 = row(rq, 0, 2), want0 = unit(0.5f, 0.5f);
    CHECK(r0[0] == doctest::Approx(want0[0]));
    CHECK(r0[1] == doctest::Approx(want0[1]));
    // Pixel rows of class 0 at rows 1, 2: released = image positions 0, 1; class = positions 1, 4.
    const std::vector<float> a = row(pq, 0, 1), b = row(pq, 0, 2);
    const std::vector<float> wa = fill == PixelQueueFill::released ? unit(3, 4) : unit(0, 1);
    const std::vector<float> wb = fill == PixelQueueFill::released ? unit(0, 1) : unit(1, 0);
    CHECK(a[0] == doctest::Approx(wa[0]));
    CHECK(a[1] == doctest::Approx(wa[1]));
    CHECK(b[0] == doctest::Approx(wb[0]));
    CHECK(b[1] == doctest::Approx(wb[1]));
    // Class 1 (3 pixels) wrapped into rows 1..3; row 0 untouched.
    CHECK(row(pq, 1, 0) == std::vector<float>{0, 0});
    const std::vector<float> c1 = row(pq, 1, 3);
    const std::vector<float> wc = fill == PixelQueueFill::released ? unit(0, 2) : unit(0, 1);  // position 2, or 5
    CHECK(c1[0] == doctest::Approx(wc[0]));
    CHECK(c1[1] == doctest::Approx(wc[1]));
  }
}

GPU_TEST_CASE("CIRKD on the GPU matches the CPU reference (contrasts, enqueue, row ops)") {
  const Device g = Device::cuda(0);
  const Tolerance tol{2e-6, 2e-4};
  auto gpu = [&](const Tensor& t) { return t.to(g); };
  auto cpu = [](const Tensor& t) { return t.to(Device::cpu()); };
  const Tensor fs = test::random_tensor({2, 3, 5, 7}, 101), ft = test::random_tensor({2, 6, 5, 7}, 102);
  {
    const CirkdMiniBatch c = cirkd_minibatch(fs, ft, 0.1), d = cirkd_minibatch(gpu(fs), gpu(ft), 0.1);
    CHECK(close(d.loss, c.loss, 1e-4));
    CHECK_TENSORS_CLOSE(cpu(d.grad), c.grad, tol);
  }
  const Tensor sp = test::random_tensor({2, 6, 5, 7}, 103);
  const Tensor labels = test::random_labels({2, 35}, 4, 104, 0.2);
  const Tensor kp = test::random_tensor({12, 6}, 105), kr = test::random_tensor({8, 6}, 106);
  {
    const CirkdMemory c = cirkd_memory_contrast(sp, ft, labels, kp, kr, 0.1, 1.0, -1, 0.1, 0.1);
    const CirkdMemory d = cirkd_memory_contrast(gpu(sp), gpu(ft), gpu(labels), gpu(kp), gpu(kr), 0.1, 1.0, -1, 0.1, 0.1);
    CHECK(close(d.pixel, c.pixel, 1e-4));
    CHECK(close(d.region, c.region, 1e-4));
    CHECK_TENSORS_CLOSE(cpu(d.grad), c.grad, tol);
  }
  for (PixelQueueFill fill : {PixelQueueFill::released, PixelQueueFill::klass}) {
    CirkdOptions o;
    o.num_classes = 4;
    o.fill = fill;
    o.pixel_update_freq = 3;  // fewer than a class's pixels: the random choice is exercised
    Tensor pq = test::random_tensor({4, 10, 6}, 107), rq = test::random_tensor({4, 3, 6}, 108);
    Tensor pp = Tensor::from_vector<int64_t>({0, 5, 8, 9}, {4}), rp = Tensor::from_vector<int64_t>({0, 1, 2, 0}, {4});
    Tensor gpq = gpu(pq), grq = gpu(rq), gpp = gpu(pp), grp = gpu(rp);
    cirkd_enqueue(ft, labels, pq, pp, rq, rp, o, 3, 4);
    cirkd_enqueue(gpu(ft), gpu(labels), gpq, gpp, grq, grp, o, 3, 4);
    CHECK_TENSORS_CLOSE(cpu(gpq), pq, Tolerance{1e-6, 1e-5});
    CHECK_TENSORS_CLOSE(cpu(grq), rq, Tolerance{1e-6, 1e-5});
    CHECK(cpu(gpp).to_vector<int64_t>() == pp.to_vector<int64_t>());
    CHECK(cpu(grp).to_vector<int64_t>() == rp.to_vector<int64_t>());
  }
  const Tensor rows = test::random_tensor({5, 6}, 109);
  const Tensor idx = Tensor::from_vector<int64_t>({69, 0, 34, 35, 12}, {5});
  CHECK_TENSORS_CLOSE(cpu(gather_pixels(gpu(ft.view({2, 6, 35})), gpu(idx))), gather_pixels(ft.view({2, 6, 35}), idx),
                      Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(cpu(scatter_pixels(gpu(rows), gpu(idx), 2, 6, 35)), scatter_pixels(rows, idx, 2, 6, 35),
                      Tolerance{0, 0});
  const Tensor ridx = Tensor::from_vector<int64_t>({3, 0, 11}, {3});
  CHECK_TENSORS_CLOSE(cpu(take_rows(gpu(kp), gpu(ridx))), take_rows(kp, ridx), Tolerance{0, 0});
  Tensor dst = kp.clone(), gdst = gpu(kp);
  put_rows(dst, ridx, rows.slice(0, 3));
  put_rows(gdst, gpu(ridx), gpu(rows.slice(0, 3)));
  CHECK_TENSORS_CLOSE(cpu(gdst), dst, Tolerance{0, 0});
}

namespace {
// A small discriminator (K classes, width d) with random weights in dtype `dt` (γ non-zero: the attention
// contributes), its u, v and statistics set.
DiscriminatorWeights random_discriminator(int64_t k, int64_t d, DType dt, uint64_t seed) {
  auto r = [&](const Shape& s, double scale) { return test::random_tensor(s, seed++, -scale, scale, dt); };
  DiscriminatorWeights w;
  w.bn_weight = test::random_tensor({k}, seed++, 0.5, 1.5, dt);
  w.bn_bias = r({k}, 0.2);
  w.bn_mean = Tensor::zeros({k}, dt);
  w.bn_var = Tensor::full({k}, 1.0, dt);
  const int64_t ch[5] = {k, d, 2 * d, 4 * d, 8 * d};
  for (int i = 0; i < 4; ++i) {
    w.l[i] = {r({ch[i + 1], ch[i], 4, 4}, 0.3), r({ch[i + 1]}, 0.1), r({ch[i + 1]}, 1.0), r({ch[i] * 16}, 1.0)};
  }
  for (auto [a, c] : {std::pair{&w.attn1, 4 * d}, std::pair{&w.attn2, 8 * d}})
    *a = {r({c / 8, c, 1, 1}, 0.3), r({c / 8}, 0.1), r({c / 8, c, 1, 1}, 0.3), r({c / 8}, 0.1),
          r({c, c, 1, 1}, 0.3),     r({c}, 0.1),     Tensor::full({1}, 0.7, dt)};
  w.last_w = r({1, 8 * d, 4, 4}, 0.2);
  w.last_b = r({1}, 0.1);
  return w;
}

// ⟨analytic, r⟩ against the central difference of f along r (a directional finite-difference check, for
// inputs too large to perturb one element at a time).
void check_directional(const std::string& what, Tensor& x, const std::function<double()>& f, const Tensor& analytic,
                       uint64_t seed) {
  const Tensor dir = test::random_tensor(x.shape(), seed, -1, 1, DType::f64);
  const double eps = 1e-7;  // small: LeakyReLU kinks near 0 spoil larger steps (errors grow with eps)
  axpy(x, dir, eps);
  const double fp = f();
  axpy(x, dir, -2 * eps);
  const double fm = f();
  axpy(x, dir, eps);
  const double numeric = (fp - fm) / (2 * eps), exact = dot_all(analytic, dir);
  INFO(what << ": analytic " << exact << ", finite differences " << numeric);
  CHECK(std::abs(numeric - exact) <= 1e-6 * std::max(1.0, std::abs(exact)));
}
}  // namespace

TEST_CASE("discriminator: gradients into its input and every kind of parameter match finite differences (f64)") {
  DiscriminatorWeights w = random_discriminator(3, 8, DType::f64, 200);
  Tensor x = f64({2, 3, 64, 72}, 201, 2.0);
  DiscriminatorTape tape;
  const Tensor out = discriminator_forward(w, x, /*update_uv=*/true, &tape);
  CHECK(out.shape() == Shape({2, 1, 1, 1}));
  CHECK(w.num_batches_tracked == 1);
  const Tensor dout = f64(out.shape(), 202);
  // From here on u, v stay (the release's autograd treats them as constants).
  auto f = [&] { return dot_all(discriminator_forward(w, x, false, nullptr), dout); };
  DiscriminatorTape t2;
  discriminator_forward(w, x, false, &t2);
  DiscriminatorWeights g = discriminator_zero_grads(w);
  const Tensor dx = discriminator_backward(w, t2, dout, g, true);
  check_directional("d/dx", x, f, dx, 203);
  check_directional("d/d l2.weight_bar", w.l[1].w_bar, f, g.l[1].w_bar, 204);
  check_directional("d/d l4.weight_bar", w.l[3].w_bar, f, g.l[3].w_bar, 205);
  check_directional("d/d l1.weight_bar", w.l[0].w_bar, f, g.l[0].w_bar, 215);
  check_directional("d/d l3.weight_bar", w.l[2].w_bar, f, g.l[2].w_bar, 225);
  check_directional("d/d l2.weight_bar (2)", w.l[1].w_bar, f, g.l[1].w_bar, 235);
  check_directional("d/d l2.bias", w.l[1].bias, f, g.l[1].bias, 245);
  check_directional("d/d attn1.query", w.attn1.wq, f, g.attn1.wq, 206);
  check_directional("d/d attn2.value", w.attn2.wv, f, g.attn2.wv, 207);
  check_fd("d/d attn1.gamma", w.attn1.gamma, f, g.attn1.gamma);
  check_fd("d/d attn2.key bias (0: the row softmax cancels it)", w.attn2.bk, f, g.attn2.bk);
  check_fd("d/d bn weight", w.bn_weight, f, g.bn_weight);
  check_fd("d/d last bias", w.last_b, f, g.last_b);
  check_fd("d/d l1 bias", w.l[0].bias, f, g.l[0].bias);
  // Logits too small for the architecture are refused with the size it needs.
  CHECK(test::error_message([&] { discriminator_forward(w, f64({1, 3, 32, 32}, 208), true, nullptr); })
            .find("h, w >= 64") != std::string::npos);
}

TEST_CASE("adversarial term: hinge values, the student's gradient, the discriminator's Adam step and its state") {
  const NetOutputs s{f64({2, 4, 64, 64}, 211, 3.0).to_dtype(DType::f32), Tensor(), Tensor()};
  const NetOutputs t{f64({2, 4, 64, 64}, 212, 3.0).to_dtype(DType::f32), Tensor(), Tensor()};
  const Tensor labels = test::random_labels({2, 128, 128}, 4, 213);
  Distiller d;
  d.add(std::make_unique<AdversarialTerm>(0.5, 0.1, 4, 8));
  d.materialize(Device::cpu(), 3);
  auto* adv = dynamic_cast<AdversarialTerm*>(d.terms()[0].get());
  REQUIRE(adv);
  const Tensor before = adv->params().flat_values().clone();
  StudentGrads g;
  const LossTerms terms = d.compute({1, 10, 3}, s, t, labels, g);
  CHECK(terms.has("adv_g"));
  CHECK(terms.has("adv_d"));
  CHECK(terms.total() == doctest::Approx(0.5 * terms.value("adv_g")));  // adv_d is the discriminator's
  CHECK(terms.value("adv_d") >= 0);
  REQUIRE(g.main.defined());
  // γ starts at 0 and every u, v got three power iterations.
  CHECK(adv->params().at("attn1.gamma").value.to_vector<float>()[0] == 0);
  CHECK(adv->params().at("preprocess_additional.num_batches_tracked").value.to_vector<int64_t>()[0] == 3);
  d.update({1, 10, 3});
  REQUIRE(adv->adam());
  CHECK(adv->adam()->steps() == 1);
  const Tensor after = adv->params().flat_values();
  double moved = 0;
  const std::vector<float> a = after.to_vector<float>(), b = before.to_vector<float>();
  for (size_t i = 0; i < a.size(); ++i) moved = std::max(moved, double(std::abs(a[i] - b[i])));
  CHECK(moved > 1e-5);   // Adam's first step moves each weight by ≈ lr where its gradient is not 0
  CHECK(moved < 5e-4);
  // The state round-trips.
  std::map<std::string, Tensor> state = d.extra_state();
  CHECK(state.count("adv.adam_m"));
  CHECK(state.count("adv.l1.0.module.weight_bar"));
  Distiller e;
  e.add(std::make_unique<AdversarialTerm>(0.5, 0.1, 4, 8));
  e.materialize(Device::cpu(), 99);
  std::map<std::string, Tensor> copy;
  for (const auto& [k, v] : state) copy[k] = v.clone();
  e.load_extra_state(copy);
  auto* adv2 = dynamic_cast<AdversarialTerm*>(e.terms()[0].get());
  CHECK_TENSORS_CLOSE(adv2->params().flat_values(), after, Tolerance{0, 0});
  CHECK(adv2->adam()->steps() == 1);
}

GPU_TEST_CASE("discriminator and adversarial losses on the GPU match the CPU reference") {
  const Device gd = Device::cuda(0);
  DiscriminatorWeights wc = random_discriminator(3, 8, DType::f32, 300);
  DiscriminatorWeights wg;
  auto to_gpu = [&](const DiscriminatorWeights& w) {
    DiscriminatorWeights o = w;
    auto mv = [&](Tensor& t) { if (t.defined()) t = t.to(gd); };
    mv(o.bn_weight), mv(o.bn_bias), mv(o.bn_mean), mv(o.bn_var), mv(o.last_w), mv(o.last_b);
    for (auto& l : o.l) mv(l.w_bar), mv(l.bias), mv(l.u), mv(l.v);
    for (auto* a : {&o.attn1, &o.attn2}) mv(a->wq), mv(a->bq), mv(a->wk), mv(a->bk), mv(a->wv), mv(a->bv), mv(a->gamma);
    return o;
  };
  wg = to_gpu(wc);
  const Tensor s = test::random_tensor({2, 3, 64, 72}, 301, -3, 3), t = test::random_tensor({2, 3, 64, 72}, 302, -3, 3);
  DiscriminatorWeights gc = discriminator_zero_grads(wc), gg = discriminator_zero_grads(wg);
  const AdversarialLoss c = adversarial_losses(wc, gc, s, t, 0.3, 0.7);
  const AdversarialLoss d = adversarial_losses(wg, gg, s.to(gd), t.to(gd), 0.3, 0.7);
  CHECK(close(d.g, c.g, 1e-4));
  CHECK(close(d.d, c.d, 1e-4));
  const Tolerance tol{1e-5, 1e-3};
  CHECK_TENSORS_CLOSE(d.grad_student.to(Device::cpu()), c.grad_student, tol);
  CHECK_TENSORS_CLOSE(gg.l[1].w_bar.to(Device::cpu()), gc.l[1].w_bar, tol);
  CHECK_TENSORS_CLOSE(gg.attn1.wq.to(Device::cpu()), gc.attn1.wq, tol);
  CHECK_TENSORS_CLOSE(gg.attn2.gamma.to(Device::cpu()), gc.attn2.gamma, tol);
  CHECK_TENSORS_CLOSE(gg.bn_weight.to(Device::cpu()), gc.bn_weight, tol);
  CHECK_TENSORS_CLOSE(wg.l[3].u.to(Device::cpu()), wc.l[3].u, Tolerance{1e-6, 1e-4});
  CHECK_TENSORS_CLOSE(wg.bn_var.to(Device::cpu()), wc.bn_var, Tolerance{1e-6, 1e-4});
  const Tensor x = test::random_tensor({5, 7}, 303);
  CHECK_TENSORS_CLOSE(leaky_relu(x.to(gd), 0.1).to(Device::cpu()), leaky_relu(x, 0.1), Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(leaky_relu_backward(x.to(gd), x.to(gd), 0.1).to(Device::cpu()), leaky_relu_backward(x, x, 0.1),
                      Tolerance{0, 0});
}
