// The cuDNN graph-API convolution wrapper: output sizes and argument checks (CPU), and forward,
// backward-data and backward-filter against a naive convolution written here (GPU).
#include "engine/cudnn_graph.h"

#include <cmath>
#include <string>
#include <vector>

#include "harness.h"

using namespace rdd;
using rdd::cudnn::ConvOp;
using rdd::cudnn::ConvParams;

namespace {

ConvParams params(int pad, int stride = 1, int dilation = 1, int groups = 1) {
  ConvParams p;
  p.pad_h = p.pad_w = pad;
  p.stride_h = p.stride_w = stride;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

// ---- the naive reference: plain loops over f32 NCHW CPU tensors, accumulated in double ----------------
// x: (N, C, H, W), w: (K, C/G, R, S), y: (N, K, P, Q). `visit(n, c, ih, iw, k, cg, r, s, p, q)` is called for
// every (input, weight, output) triple that meets inside the padded input.
template <class F>
void for_each_tap(const Shape& xs, const Shape& ws, const Shape& ys, const ConvParams& cp, F visit) {
  const int64_t N = xs[0], H = xs[2], W = xs[3];
  const int64_t K = ws[0], Cg = ws[1], R = ws[2], S = ws[3];
  const int64_t P = ys[2], Q = ys[3];
  const int64_t Kg = K / cp.groups;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t g = k / Kg;
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q)
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t r = 0; r < R; ++r) {
              const int64_t ih = p * cp.stride_h - cp.pad_h + r * cp.dilation_h;
              if (ih < 0 || ih >= H) continue;
              for (int64_t s = 0; s < S; ++s) {
                const int64_t iw = q * cp.stride_w - cp.pad_w + s * cp.dilation_w;
                if (iw < 0 || iw >= W) continue;
                visit(n, g * Cg + cg, ih, iw, k, cg, r, s, p, q);
              }
            }
    }
}

int64_t at4(const Shape& s, int64_t a, int64_t b, int64_t c, int64_t d) {
  return ((a * s[1] + b) * s[2] + c) * s[3] + d;
}

Shape out_shape(const Shape& xs, const Shape& ws, const ConvParams& p) {
  return {xs[0], ws[0], cudnn::conv_output_size(int(xs[2]), int(ws[2]), p.pad_h, p.stride_h, p.dilation_h),
          cudnn::conv_output_size(int(xs[3]), int(ws[3]), p.pad_w, p.stride_w, p.dilation_w)};
}

Tensor ref_forward(const Tensor& x, const Tensor& w, const ConvParams& p) {
  const Shape ys = out_shape(x.shape(), w.shape(), p);
  std::vector<double> acc(size_t(shape_numel(ys)), 0.0);
  const float *X = x.data<float>(), *Wt = w.data<float>();
  for_each_tap(x.shape(), w.shape(), ys, p,
               [&](int64_t n, int64_t c, int64_t ih, int64_t iw, int64_t k, int64_t cg, int64_t r, int64_t s,
                   int64_t op, int64_t oq) {
                 acc[size_t(at4(ys, n, k, op, oq))] +=
                     double(X[at4(x.shape(), n, c, ih, iw)]) * Wt[at4(w.shape(), k, cg, r, s)];
               });
  Tensor y = Tensor::empty(ys);
  for (size_t i = 0; i < acc.size(); ++i) y.data<float>()[i] = float(acc[i]);
  return y;
}

// dx = the adjoint of the forward in x: every tap sends dy·w back to the input it read.
Tensor ref_backward_data(const Tensor& dy, const Tensor& w, const Shape& xs, const ConvParams& p) {
  std::vector<double> acc(size_t(shape_numel(xs)), 0.0);
  const float *DY = dy.data<float>(), *Wt = w.data<float>();
  for_each_tap(xs, w.shape(), dy.shape(), p,
               [&](int64_t n, int64_t c, int64_t ih, int64_t iw, int64_t k, int64_t cg, int64_t r, int64_t s,
                   int64_t op, int64_t oq) {
                 acc[size_t(at4(xs, n, c, ih, iw))] +=
                     double(DY[at4(dy.shape(), n, k, op, oq)]) * Wt[at4(w.shape(), k, cg, r, s)];
               });
  Tensor dx = Tensor::empty(xs);
  for (size_t i = 0; i < acc.size(); ++i) dx.data<float>()[i] = float(acc[i]);
  return dx;
}

// dw = the adjoint of the forward in w: every tap adds x·dy to the weight it used.
Tensor ref_backward_filter(const Tensor& x, const Tensor& dy, const Shape& ws, const ConvParams& p) {
  std::vector<double> acc(size_t(shape_numel(ws)), 0.0);
  const float *X = x.data<float>(), *DY = dy.data<float>();
  for_each_tap(x.shape(), ws, dy.shape(), p,
               [&](int64_t n, int64_t c, int64_t ih, int64_t iw, int64_t k, int64_t cg, int64_t r, int64_t s,
                   int64_t op, int64_t oq) {
                 acc[size_t(at4(ws, k, cg, r, s))] +=
                     double(X[at4(x.shape(), n, c, ih, iw)]) * DY[at4(dy.shape(), n, k, op, oq)];
               });
  Tensor dw = Tensor::empty(ws);
  for (size_t i = 0; i < acc.size(); ++i) dw.data<float>()[i] = float(acc[i]);
  return dw;
}

Tensor to_host_f32_nchw(const Tensor& t) {
  return t.to(Device::cpu()).to_layout(Layout::NCHW).to_dtype(DType::f32);
}

// On the GPU in `dtype` and `layout` (converted from an f32 NCHW CPU tensor).
Tensor to_gpu(const Tensor& t, DType dtype = DType::f32, Layout layout = Layout::NCHW) {
  return t.to_dtype(dtype).to_layout(layout).to(Device::cuda(0));
}

// f32 GPU vs CPU: the reference is exact to rounding; cuDNN's f32 engines (no TF32, maybe Winograd) stay
// well inside 1e-4 for sums of a few hundred products of values in [-1, 1]. An indexing bug is O(1).
constexpr Tolerance kF32{1e-4, 1e-4};

struct Config {
  const char* name;
  Shape x;  // N, C, H, W
  Shape w;  // K, C/G, R, S
  ConvParams p;
};

std::vector<Config> configs() {
  ConvParams asym = params(0);
  asym.pad_h = 2, asym.pad_w = 1, asym.stride_h = 2, asym.stride_w = 1;
  return {
      {"3x3 pad 1", {2, 3, 8, 8}, {16, 3, 3, 3}, params(1)},
      {"3x3 stride 2, odd 7x9", {2, 5, 7, 9}, {6, 5, 3, 3}, params(1, 2)},
      {"3x3 dilation 2 pad 2, batch 1", {1, 4, 9, 7}, {8, 4, 3, 3}, params(2, 1, 2)},
      {"3x3 dilation 4 pad 4", {2, 3, 13, 11}, {4, 3, 3, 3}, params(4, 1, 4)},
      {"1x1, channels 5, batch 1", {1, 5, 7, 9}, {3, 5, 1, 1}, params(0)},
      {"grouped 3 groups", {2, 6, 7, 9}, {9, 2, 3, 3}, params(1, 1, 1, 3)},
      {"depthwise", {2, 8, 9, 7}, {8, 1, 3, 3}, params(1, 1, 1, 8)},
      {"depthwise x2 stride 2 dilation 2", {1, 4, 11, 10}, {8, 1, 3, 3}, params(2, 2, 2, 4)},
      {"5x3 kernel, pad (2,1), stride (2,1)", {1, 3, 7, 9}, {5, 3, 5, 3}, asym},
  };
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// CPU: output sizes and the checks that run before cuDNN
// ---------------------------------------------------------------------------------------------------

TEST_CASE("conv_output_size: closed forms") {
  CHECK(cudnn::conv_output_size(8, 3, 1, 1, 1) == 8);      // "same" 3x3
  CHECK(cudnn::conv_output_size(8, 3, 1, 2, 1) == 4);      // stride 2
  CHECK(cudnn::conv_output_size(7, 3, 1, 2, 1) == 4);      // odd input, stride 2: (7 + 2 - 3) / 2 + 1
  CHECK(cudnn::conv_output_size(7, 3, 0, 2, 1) == 3);
  CHECK(cudnn::conv_output_size(224, 7, 3, 2, 1) == 112);  // ResNet stem
  CHECK(cudnn::conv_output_size(9, 1, 0, 1, 1) == 9);      // 1x1
  CHECK(cudnn::conv_output_size(9, 1, 0, 2, 1) == 5);
  CHECK(cudnn::conv_output_size(3, 3, 0, 1, 1) == 1);      // kernel exactly the input
}

TEST_CASE("conv_output_size: dilation widens the kernel") {
  CHECK(cudnn::conv_output_size(9, 3, 2, 1, 2) == 9);     // dilation 2 with pad 2 keeps the size
  CHECK(cudnn::conv_output_size(13, 3, 4, 1, 4) == 13);   // dilation 4 with pad 4 keeps the size
  CHECK(cudnn::conv_output_size(9, 3, 0, 1, 2) == 5);     // span 5
  CHECK(cudnn::conv_output_size(11, 3, 2, 2, 2) == 6);    // (11 + 4 - 5) / 2 + 1
  CHECK(cudnn::conv_output_size(65, 3, 12, 1, 12) == 65);  // ASPP rate 12
}

TEST_CASE("conv_output_size: refuses a kernel larger than the padded input and bad parameters") {
  CHECK_THROWS_WITH_AS(cudnn::conv_output_size(2, 5, 1, 1, 1), doctest::Contains("spans 5 but the padded input is only 4"),
                       Error);
  CHECK_THROWS_WITH_AS(cudnn::conv_output_size(5, 3, 0, 1, 3), doctest::Contains("spans 7"), Error);
  CHECK_NOTHROW(cudnn::conv_output_size(5, 3, 1, 1, 3));  // span 7 fits 5 + 2
  CHECK_THROWS_AS(cudnn::conv_output_size(8, 3, 1, 0, 1), Error);   // stride 0
  CHECK_THROWS_AS(cudnn::conv_output_size(8, 3, -1, 1, 1), Error);  // negative pad
  CHECK_THROWS_AS(cudnn::conv_output_size(8, 3, 1, 1, 0), Error);   // dilation 0
  CHECK_THROWS_AS(cudnn::conv_output_size(0, 1, 0, 1, 1), Error);   // empty input
  CHECK_THROWS_AS(cudnn::conv_output_size(8, 0, 0, 1, 1), Error);   // empty kernel
}

TEST_CASE("validate_conv_shapes accepts consistent tensors for every op, grouped and depthwise") {
  for (const Config& c : configs()) {
    CAPTURE(c.name);
    Tensor x = Tensor::empty(c.x), w = Tensor::empty(c.w), y = Tensor::empty(out_shape(c.x, c.w, c.p));
    CHECK_NOTHROW(cudnn::validate_conv_shapes(ConvOp::forward, x, w, y, c.p));
    CHECK_NOTHROW(cudnn::validate_conv_shapes(ConvOp::backward_data, x, w, y, c.p));
    CHECK_NOTHROW(cudnn::validate_conv_shapes(ConvOp::backward_filter, x, w, y, c.p));
  }
  // NHWC and 16-bit tensors pass the shape checks the same way (the shape is the logical N, C, H, W).
  Tensor x = Tensor::empty({1, 4, 6, 5}, DType::bf16, Device::cpu(), Layout::NHWC);
  Tensor w = Tensor::empty({8, 4, 3, 3}, DType::bf16, Device::cpu(), Layout::NHWC);
  Tensor y = Tensor::empty({1, 8, 6, 5}, DType::bf16, Device::cpu(), Layout::NHWC);
  CHECK_NOTHROW(cudnn::validate_conv_shapes(ConvOp::forward, x, w, y, params(1)));
}

TEST_CASE("validate_conv_shapes names the op and the shapes") {
  Tensor x = Tensor::empty({2, 3, 8, 8});
  Tensor y = Tensor::empty({2, 16, 8, 8});
  // Channel mismatch.
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, Tensor::empty({16, 4, 3, 3}), y, params(1)),
                       "conv_forward: x f32[2,3,8,8] NCHW cpu has 3 channels but w f32[16,4,3,3] NCHW cpu expects 4 x "
                       "groups 1",
                       Error);
  // Groups: C = 6 with w's C 2 needs groups 3; K = 8 is not divisible by 3.
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, Tensor::empty({2, 6, 8, 8}),
                                                   Tensor::empty({8, 2, 3, 3}), Tensor::empty({2, 8, 8, 8}),
                                                   params(1, 1, 1, 3)),
                       doctest::Contains("has 8 filters, not divisible by groups 3"), Error);
  // Wrong output shape: the message gives the shape it should have.
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, Tensor::empty({16, 3, 3, 3}),
                                                   Tensor::empty({2, 16, 8, 8}), params(1, 2)),
                       doctest::Contains("y f32[2,16,8,8] NCHW cpu should be [2,16,4,4]"), Error);
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, Tensor::empty({16, 3, 3, 3}),
                                                   Tensor::empty({3, 16, 8, 8}), params(1)),
                       doctest::Contains("should be [2,16,8,8]"), Error);
  // The backward ops name their tensors dx / dy / dw.
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::backward_data, x, Tensor::empty({16, 4, 3, 3}), y,
                                                   params(1)),
                       doctest::Contains("conv_backward_data: dx f32[2,3,8,8] NCHW cpu has 3 channels but w "), Error);
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::backward_filter, x, Tensor::empty({16, 3, 3, 3}),
                                                   Tensor::empty({2, 16, 7, 8}), params(1)),
                       doctest::Contains("conv_backward_filter: dy f32[2,16,7,8] NCHW cpu should be [2,16,8,8]"),
                       Error);
  // Kernel larger than the padded input.
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, Tensor::empty({1, 3, 4, 4}),
                                                   Tensor::empty({2, 3, 3, 3}), Tensor::empty({1, 2, 4, 4}),
                                                   params(1, 1, 3)),
                       doctest::Contains("spans 7x7 but x f32[1,3,4,4] NCHW cpu padded by (1,1) is only 6x6"), Error);
}

TEST_CASE("validate_conv_shapes refuses mixed dtypes, layouts, ranks, empty tensors and bad parameters") {
  Tensor x = Tensor::empty({2, 3, 8, 8}), w = Tensor::empty({4, 3, 3, 3}), y = Tensor::empty({2, 4, 8, 8});
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, Tensor::empty({4, 3, 3, 3}, DType::bf16), y,
                                                   params(1)),
                       doctest::Contains("have different dtypes"), Error);
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, w,
                                                   Tensor::empty({2, 4, 8, 8}, DType::f32, Device::cpu(), Layout::NHWC),
                                                   params(1)),
                       doctest::Contains("have different layouts"), Error);
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, Tensor::empty({3, 8, 8}), w, y, params(1)),
                       doctest::Contains("conv_forward: x f32[3,8,8] cpu is not 4-D"), Error);
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, w, Tensor(), params(1)),
                       doctest::Contains("y is undefined"), Error);
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, Tensor::empty({0, 3, 8, 8}), w,
                                                   Tensor::empty({0, 4, 8, 8}), params(1)),
                       doctest::Contains("is empty"), Error);
  ConvParams bad = params(1);
  bad.stride_w = 0;
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, w, y, bad),
                       doctest::Contains("conv_forward: invalid parameters pad (1,1) stride (1,0)"), Error);
  bad = params(1);
  bad.groups = 0;
  CHECK_THROWS_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, w, y, bad), Error);
  bad = params(1);
  bad.pad_h = -1;
  CHECK_THROWS_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, w, y, bad), Error);
  bad = params(1);
  bad.dilation_h = 0;
  CHECK_THROWS_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, w, y, bad), Error);
  // The output may not be one of the inputs.
  Tensor sq = Tensor::empty({2, 3, 8, 8});
  Tensor w33 = Tensor::empty({3, 3, 3, 3});
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, sq, w33, sq, params(1)),
                       doctest::Contains("the output y f32[2,3,8,8] NCHW cpu overlaps the memory of x"), Error);
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::backward_data, sq, w33, sq, params(1)),
                       doctest::Contains("the output dx f32[2,3,8,8] NCHW cpu overlaps the memory of dy"), Error);
}

TEST_CASE("validate_conv_shapes refuses an output that partly overlaps an input, and accepts adjacent views") {
  // Images 0-1 and 1-2 of one batch of 4 overlap in image 1 but start at different addresses.
  const Tensor batch = Tensor::empty({4, 3, 8, 8});
  const Tensor w33 = Tensor::empty({3, 3, 3, 3});
  const Tensor x = batch.slice(0, 2);
  Tensor y_overlap = batch.slice(1, 3);
  REQUIRE(x.raw() != y_overlap.raw());
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, x, w33, y_overlap, params(1)),
                       doctest::Contains("the output y f32[2,3,8,8] NCHW cpu overlaps the memory of x"), Error);
  // The output before the input (its end inside the input) is caught the same way.
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::forward, y_overlap, w33, x, params(1)),
                       doctest::Contains("overlaps the memory of x"), Error);
  // backward_filter: dw inside dy's bytes (dy (1, 3, 8, 8) holds 192 floats, dw (3, 3, 3, 3) 81).
  const Tensor flat = Tensor::empty({192});
  const Tensor dy = flat.view({1, 3, 8, 8});
  Tensor dw = flat.slice(100, 181).view({3, 3, 3, 3});
  CHECK_THROWS_WITH_AS(cudnn::validate_conv_shapes(ConvOp::backward_filter, Tensor::empty({1, 3, 8, 8}), dw, dy,
                                                   params(1)),
                       doctest::Contains("the output dw f32[3,3,3,3] NCHW cpu overlaps the memory of dy"), Error);
  // Images 0-1 and 2-3 touch but do not overlap: [raw, raw + nbytes) ranges are half-open.
  Tensor y_adjacent = batch.slice(2, 4);
  CHECK_NOTHROW(cudnn::validate_conv_shapes(ConvOp::forward, x, w33, y_adjacent, params(1)));
  CHECK_NOTHROW(cudnn::validate_conv_shapes(ConvOp::forward, y_adjacent, w33, x, params(1)));
}

// ---------------------------------------------------------------------------------------------------
// CPU: engine choice (the bookkeeping behind every plan, with fake candidates)
// ---------------------------------------------------------------------------------------------------

namespace {

constexpr int64_t kMiB = int64_t(1) << 20;

// A fake candidate: what "finalising" it gives, and how often it was asked.
struct FakeEngine {
  bool finalizes = true;
  int64_t workspace = 0;
  int calls = 0;
};

std::vector<std::string> labels(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back("engine config " + std::to_string(i + 1));
  return out;
}

int choose(cudnn::EngineChooser& chooser, std::vector<FakeEngine>& engines, int64_t budget) {
  return chooser.choose(budget, [&](int i) {
    FakeEngine& e = engines[size_t(i)];
    ++e.calls;
    cudnn::EngineAttempt a;
    a.finalized = e.finalizes;
    a.workspace_bytes = e.finalizes ? e.workspace : 0;
    a.refusal = e.finalizes ? "" : "CUDNN_STATUS_NOT_SUPPORTED (fake " + std::to_string(i + 1) + ")";
    return a;
  });
}

}  // namespace

TEST_CASE("workspace_budget: 256 MiB floor, 1/8 of the memory, never below the workspace already held") {
  CHECK(cudnn::workspace_budget(0, 0) == 256 * kMiB);
  CHECK(cudnn::workspace_budget(1024 * kMiB, 0) == 256 * kMiB);   // 1/8 of 1 GiB is under the floor
  CHECK(cudnn::workspace_budget(size_t(80) << 30, 0) == 10240 * kMiB);  // 1/8 of 80 GiB
  CHECK(cudnn::workspace_budget(size_t(8) << 30, 0) == 1024 * kMiB);
  CHECK(cudnn::workspace_budget(1024 * kMiB, 700 * kMiB) == 700 * kMiB);  // held already: costs nothing more
  CHECK(cudnn::workspace_budget(size_t(80) << 30, 700 * kMiB) == 10240 * kMiB);
  // The budget used: from the card's size (the same whatever is free), capped by what is available.
  CHECK(cudnn::workspace_budget_of_device(size_t(80) << 30, size_t(60) << 30, 0) == 10240 * kMiB);
  CHECK(cudnn::workspace_budget_of_device(size_t(80) << 30, size_t(70) << 30, 0) == 10240 * kMiB);
  CHECK(cudnn::workspace_budget_of_device(size_t(80) << 30, 100 * kMiB, 0) == 100 * kMiB);  // nearly full
  CHECK(cudnn::workspace_budget_of_device(size_t(80) << 30, 100 * kMiB, 300 * kMiB) == 300 * kMiB);  // held
}

TEST_CASE("EngineChooser: the first candidate that finalises within the budget, trying no further") {
  std::vector<FakeEngine> engines(5);
  engines[0].finalizes = false;
  engines[1].workspace = 300 * kMiB;  // over a 256 MiB budget
  engines[2].workspace = 10 * kMiB;
  engines[3].workspace = 0;
  cudnn::EngineChooser chooser(labels(engines.size()));
  CHECK(choose(chooser, engines, 256 * kMiB) == 2);
  CHECK(engines[0].calls == 1);
  CHECK(engines[1].calls == 1);
  CHECK(engines[2].calls == 1);
  CHECK(engines[3].calls == 0);  // lazy: finalising can compile kernels, so stop at the first that fits
  CHECK(engines[4].calls == 0);
  CHECK(chooser.in_play() == 4);  // the refused one is out; the over-budget one stays as a fallback
  const std::string why = chooser.refusals();
  CHECK(why.find("\n  engine config 1: not finalised: CUDNN_STATUS_NOT_SUPPORTED (fake 1)") != std::string::npos);
  CHECK(why.find("\n  engine config 2: needs a workspace of 300 MiB, over the budget of 256 MiB") != std::string::npos);
  CHECK(why.find("engine config 3") == std::string::npos);  // the chosen one was not passed over
  // A bigger budget takes the earlier candidate.
  for (FakeEngine& e : engines) e.calls = 0;
  cudnn::EngineChooser roomy(labels(engines.size()));
  CHECK(choose(roomy, engines, 512 * kMiB) == 1);
  CHECK(engines[2].calls == 0);
}

TEST_CASE("EngineChooser: when none fits the budget, the smallest workspace (the earliest on ties)") {
  std::vector<FakeEngine> engines(5);
  engines[0].workspace = 900 * kMiB;
  engines[1].workspace = 400 * kMiB;
  engines[2].finalizes = false;
  engines[3].workspace = 400 * kMiB;
  engines[4].workspace = 700 * kMiB;
  cudnn::EngineChooser chooser(labels(engines.size()));
  CHECK(choose(chooser, engines, 256 * kMiB) == 1);
  for (const FakeEngine& e : engines) CHECK(e.calls == 1);  // every one had to be looked at
  const std::string why = chooser.refusals();
  CHECK(why.find("engine config 1: needs a workspace of 900 MiB") != std::string::npos);
  CHECK(why.find("engine config 2") == std::string::npos);  // chosen
  CHECK(why.find("engine config 4: needs a workspace of 400 MiB") != std::string::npos);
  // It fails at execute: the next smallest, config 4 (400 MiB), takes over.
  chooser.drop(1, "failed at its first execute: CUDNN_STATUS_EXECUTION_FAILED");
  CHECK(choose(chooser, engines, 256 * kMiB) == 3);
  CHECK(engines[2].calls == 1);  // refused once, never asked again
  CHECK(engines[1].calls == 1);  // dropped, never asked again
  CHECK(chooser.refusals().find("engine config 2: failed at its first execute: CUDNN_STATUS_EXECUTION_FAILED") !=
        std::string::npos);
}

TEST_CASE("EngineChooser: dropping candidates that fail at execute walks the list, then reports every reason") {
  std::vector<FakeEngine> engines(4);
  engines[1].finalizes = false;
  engines[3].workspace = 2048 * kMiB;  // over budget: the last resort
  cudnn::EngineChooser chooser(labels(engines.size()));
  CHECK(choose(chooser, engines, 256 * kMiB) == 0);
  chooser.drop(0, "failed at its first execute: boom 1");
  CHECK(choose(chooser, engines, 256 * kMiB) == 2);
  CHECK(engines[0].calls == 1);
  CHECK(engines[1].calls == 1);
  CHECK(chooser.in_play() == 2);
  chooser.drop(2, "failed at its first execute: boom 3");
  CHECK(choose(chooser, engines, 256 * kMiB) == 3);  // over budget, but the only one left
  chooser.drop(3, "failed at its first execute: boom 4");
  CHECK(choose(chooser, engines, 256 * kMiB) == -1);
  CHECK(chooser.in_play() == 0);
  CHECK(engines[1].calls == 1);
  const std::string why = chooser.refusals();
  CHECK(why ==
        "\n  engine config 1: failed at its first execute: boom 1"
        "\n  engine config 2: not finalised: CUDNN_STATUS_NOT_SUPPORTED (fake 2)"
        "\n  engine config 3: failed at its first execute: boom 3"
        "\n  engine config 4: failed at its first execute: boom 4");
  CHECK_THROWS_AS(chooser.drop(4, "no such candidate"), Error);
}

TEST_CASE("EngineChooser: nothing finalises, or a negative workspace, gives -1 with every reason") {
  std::vector<FakeEngine> engines(3);
  for (FakeEngine& e : engines) e.finalizes = false;
  cudnn::EngineChooser chooser(labels(engines.size()));
  CHECK(choose(chooser, engines, 256 * kMiB) == -1);
  CHECK(chooser.in_play() == 0);
  for (int i = 1; i <= 3; ++i) {
    const std::string line = "engine config " + std::to_string(i) + ": not finalised: CUDNN_STATUS_NOT_SUPPORTED";
    CHECK(chooser.refusals().find(line) != std::string::npos);
  }
  cudnn::EngineChooser odd(labels(1));
  const int picked = odd.choose(256 * kMiB, [](int) { return cudnn::EngineAttempt{true, -8, ""}; });
  CHECK(picked == -1);
  CHECK(odd.refusals().find("negative workspace size -8") != std::string::npos);
  cudnn::EngineChooser none(labels(0));
  CHECK(none.choose(256 * kMiB, [](int) { return cudnn::EngineAttempt{}; }) == -1);
}

TEST_CASE("a NaN-filled output is a mismatch for the comparison the GPU cases use") {
  // The GPU cases pre-fill outputs with NaN: with beta 0, an engine that read the output (0·NaN = NaN)
  // must fail the comparison, which holds only if CHECK_TENSORS_CLOSE counts NaN as a mismatch.
  const Tensor want = test::random_tensor({1, 2, 3, 3}, 11);
  const Tensor nan = Tensor::full(want.shape(), NAN);
  const Comparison c = compare_tensors(nan, want, kF32);
  CHECK_FALSE(c.ok);
  CHECK(c.mismatches == want.numel());
  Tensor one_nan = want.clone();
  one_nan.data<float>()[4] = NAN;
  CHECK_FALSE(compare_tensors(one_nan, want, kF32).ok);
}

TEST_CASE("the convolutions refuse CPU tensors before touching cuDNN or the plan cache") {
  cudnn::clear_plan_cache();
  Tensor x = test::random_tensor({1, 3, 6, 6}, 1), w = test::random_tensor({2, 3, 3, 3}, 2);
  Tensor y = Tensor::zeros({1, 2, 6, 6});
  // The emulated build has no cuDNN at all: every call says so (after the shape checks below).
  const bool real_cuda = built_with_cuda() && !cuda_is_emulated();
  const char* why = real_cuda ? "is not on a GPU"
                              : (cuda_is_emulated() ? "this is an emulated-CUDA build, which has no cuDNN"
                                                    : "this is a CPU-only build");
  const std::string full = std::string("conv_forward: ") + (real_cuda ? "x f32[1,3,6,6] NCHW cpu " : "") + why;
  CHECK_THROWS_WITH_AS(cudnn::conv_forward(x, w, y, params(1)), doctest::Contains(full.c_str()), Error);
  CHECK_THROWS_WITH_AS(cudnn::conv_backward_data(y, w, x, params(1)), doctest::Contains(why), Error);
  CHECK_THROWS_WITH_AS(cudnn::conv_backward_filter(x, y, w, params(1)), doctest::Contains(why), Error);
  // Shape errors come first, whatever the build.
  CHECK_THROWS_WITH_AS(cudnn::conv_forward(x, w, y, params(0)), doctest::Contains("should be [1,2,4,4]"), Error);
  const cudnn::PlanCacheStats s = cudnn::plan_cache_stats();
  CHECK(s.plans == 0);
  CHECK(s.hits == 0);
  CHECK(s.misses == 0);
}

TEST_CASE("allow_tf32: off by default (f32 means f32), set and read back process-wide") {
  CHECK_FALSE(cudnn::allow_tf32());
  cudnn::set_allow_tf32(true);
  CHECK(cudnn::allow_tf32());
  cudnn::set_allow_tf32(false);
  CHECK_FALSE(cudnn::allow_tf32());
}

TEST_CASE("the naive reference in this file: a hand-computed case") {
  // x = 1..9 in a 3x3 image, w = [[0,1,0],[1,1,1],[0,1,0]] (a plus), pad 1: y is the plus-sum at each pixel.
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  Tensor w = Tensor::from_vector<float>({0, 1, 0, 1, 1, 1, 0, 1, 0}, {1, 1, 3, 3});
  const Tensor y = ref_forward(x, w, params(1));
  CHECK(y.to_vector<float>() == std::vector<float>{7, 11, 11, 17, 25, 23, 19, 29, 23});
  // Backward data of a one-hot dy at the centre scatters w back; backward filter of it picks x's patch.
  Tensor dy = Tensor::from_vector<float>({0, 0, 0, 0, 1, 0, 0, 0, 0}, {1, 1, 3, 3});
  CHECK(ref_backward_data(dy, w, x.shape(), params(1)).to_vector<float>() == w.to_vector<float>());
  CHECK(ref_backward_filter(x, dy, w.shape(), params(1)).to_vector<float>() == x.to_vector<float>());
  // Stride 2 without padding: one output, the full 3x3 dot product.
  CHECK(ref_forward(x, w, params(0, 2)).to_vector<float>() == std::vector<float>{25});
}

// ---------------------------------------------------------------------------------------------------
// GPU: cuDNN vs the reference
// ---------------------------------------------------------------------------------------------------

SILICON_TEST_CASE("conv_forward matches the reference (f32 NCHW, every config)") {
  uint64_t seed = 100;
  for (const Config& c : configs()) {
    CAPTURE(c.name);
    const Tensor x = test::random_tensor(c.x, ++seed), w = test::random_tensor(c.w, ++seed);
    const Tensor want = ref_forward(x, w, c.p);
    // NaN: with beta 0 the output must not be read (0·NaN = NaN would fail the comparison).
    Tensor y = Tensor::full(want.shape(), NAN, DType::f32, Device::cuda(0));
    cudnn::conv_forward(to_gpu(x), to_gpu(w), y, c.p);
    CHECK_TENSORS_CLOSE(to_host_f32_nchw(y), want, kF32);
  }
}

SILICON_TEST_CASE("with TF32 allowed, f32 convolutions stay within TF32 rounding and get plans of their own") {
  cudnn::clear_plan_cache();
  uint64_t seed = 150;
  size_t strict_plans = 0;
  for (bool tf32 : {false, true}) {
    cudnn::set_allow_tf32(tf32);
    for (const Config& c : configs()) {
      CAPTURE(c.name);
      CAPTURE(tf32);
      const Tensor x = test::random_tensor(c.x, ++seed), w = test::random_tensor(c.w, ++seed);
      const Tensor want = ref_forward(x, w, c.p);
      Tensor y = Tensor::full(want.shape(), NAN, DType::f32, Device::cuda(0));
      cudnn::conv_forward(to_gpu(x), to_gpu(w), y, c.p);
      // TF32 keeps 10 mantissa bits of each input (relative 2^-11 each), products summed in f32.
      CHECK_TENSORS_CLOSE(to_host_f32_nchw(y), want, tf32 ? Tolerance{5e-3, 5e-3} : kF32);
    }
    if (!tf32) strict_plans = cudnn::plan_cache_stats().plans;
  }
  cudnn::set_allow_tf32(false);
  CHECK(cudnn::plan_cache_stats().plans == 2 * strict_plans);  // the setting is part of the plan key
  CHECK_FALSE(cudnn::allow_tf32());
}

SILICON_TEST_CASE("conv_backward_data matches the reference (f32 NCHW, every config)") {
  uint64_t seed = 200;
  for (const Config& c : configs()) {
    CAPTURE(c.name);
    const Tensor w = test::random_tensor(c.w, ++seed);
    const Tensor dy = test::random_tensor(out_shape(c.x, c.w, c.p), ++seed);
    const Tensor want = ref_backward_data(dy, w, c.x, c.p);
    Tensor dx = Tensor::full(c.x, NAN, DType::f32, Device::cuda(0));  // beta 0 must not read it
    cudnn::conv_backward_data(to_gpu(dy), to_gpu(w), dx, c.p);
    CHECK_TENSORS_CLOSE(to_host_f32_nchw(dx), want, kF32);
  }
}

SILICON_TEST_CASE("conv_backward_filter matches the reference (f32 NCHW, every config)") {
  uint64_t seed = 300;
  for (const Config& c : configs()) {
    CAPTURE(c.name);
    const Tensor x = test::random_tensor(c.x, ++seed);
    const Tensor dy = test::random_tensor(out_shape(c.x, c.w, c.p), ++seed);
    const Tensor want = ref_backward_filter(x, dy, c.w, c.p);
    Tensor dw = Tensor::full(c.w, NAN, DType::f32, Device::cuda(0));  // beta 0 must not read it
    cudnn::conv_backward_filter(to_gpu(x), to_gpu(dy), dw, c.p);
    CHECK_TENSORS_CLOSE(to_host_f32_nchw(dw), want, kF32);
  }
}

SILICON_TEST_CASE("beta accumulates into the output (1 and 0.5), for all three ops") {
  const Config c = configs()[5];  // grouped
  const Shape ys = out_shape(c.x, c.w, c.p);
  const Tensor x = test::random_tensor(c.x, 401), w = test::random_tensor(c.w, 402), dy = test::random_tensor(ys, 403);
  for (float beta : {1.0f, 0.5f}) {
    CAPTURE(beta);
    auto blend = [beta](const Tensor& prior, const Tensor& fresh) {  // beta·prior + fresh, on the CPU
      Tensor out = fresh.clone();
      for (int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] += beta * prior.data<float>()[i];
      return out;
    };
    const Tensor y0 = test::random_tensor(ys, 404), dx0 = test::random_tensor(c.x, 405),
                 dw0 = test::random_tensor(c.w, 406);
    Tensor y = to_gpu(y0), dx = to_gpu(dx0), dw = to_gpu(dw0);
    cudnn::conv_forward(to_gpu(x), to_gpu(w), y, c.p, beta);
    cudnn::conv_backward_data(to_gpu(dy), to_gpu(w), dx, c.p, beta);
    cudnn::conv_backward_filter(to_gpu(x), to_gpu(dy), dw, c.p, beta);
    CHECK_TENSORS_CLOSE(to_host_f32_nchw(y), blend(y0, ref_forward(x, w, c.p)), kF32);
    CHECK_TENSORS_CLOSE(to_host_f32_nchw(dx), blend(dx0, ref_backward_data(dy, w, c.x, c.p)), kF32);
    CHECK_TENSORS_CLOSE(to_host_f32_nchw(dw), blend(dw0, ref_backward_filter(x, dy, c.w, c.p)), kF32);
  }
}

SILICON_TEST_CASE("the plan cache: a second identical call is a hit; shape, op and beta make new plans") {
  cudnn::clear_plan_cache();
  const Tensor x = to_gpu(test::random_tensor({2, 3, 8, 8}, 501)), w = to_gpu(test::random_tensor({4, 3, 3, 3}, 502));
  Tensor y = Tensor::empty({2, 4, 8, 8}, DType::f32, Device::cuda(0));
  cudnn::conv_forward(x, w, y, params(1));
  auto s = cudnn::plan_cache_stats();
  CHECK(s.plans == 1);
  CHECK(s.misses == 1);
  CHECK(s.hits == 0);
  const std::vector<float> first = y.to_vector<float>();
  cudnn::conv_forward(x, w, y, params(1));  // same configuration: served from the cache
  s = cudnn::plan_cache_stats();
  CHECK(s.plans == 1);
  CHECK(s.misses == 1);
  CHECK(s.hits == 1);
  CHECK(y.to_vector<float>() == first);  // deterministic engine: bit-identical
  cudnn::conv_forward(x, w, y, params(1), 1.0f);  // beta is part of the graph: a new plan
  Tensor y2 = Tensor::empty({2, 4, 4, 4}, DType::f32, Device::cuda(0));
  cudnn::conv_forward(x, w, y2, params(1, 2));  // another stride
  Tensor dx = Tensor::empty({2, 3, 8, 8}, DType::f32, Device::cuda(0));
  cudnn::conv_backward_data(y, w, dx, params(1));  // another op
  s = cudnn::plan_cache_stats();
  CHECK(s.plans == 4);
  CHECK(s.misses == 4);
  CHECK(s.hits == 1);
  cudnn::conv_forward(x, w, y2, params(1, 2));
  CHECK(cudnn::plan_cache_stats().hits == 2);
  cudnn::clear_plan_cache();
  s = cudnn::plan_cache_stats();
  CHECK(s.plans == 0);
  CHECK(s.hits == 0);
  CHECK(s.misses == 0);
  cudnn::conv_forward(x, w, y2, params(1, 2));  // rebuilt after clearing, same answer
  CHECK(cudnn::plan_cache_stats().misses == 1);
  CHECK_TENSORS_CLOSE(to_host_f32_nchw(y2), ref_forward(x.to(Device::cpu()), w.to(Device::cpu()), params(1, 2)), kF32);
}

namespace {
// Turns the injected execute failures off however the case ends.
struct InjectedExecuteFailures {
  explicit InjectedExecuteFailures(int n) { cudnn::inject_execute_failures_for_testing(n); }
  ~InjectedExecuteFailures() { cudnn::inject_execute_failures_for_testing(0); }
};
}  // namespace

SILICON_TEST_CASE("a plan that fails at its first execute gives way to the next engine config; one that ran does not") {
  cudnn::clear_plan_cache();
  const Tensor xc = test::random_tensor({2, 3, 8, 8}, 511), wc = test::random_tensor({4, 3, 3, 3}, 512);
  const Tensor x = to_gpu(xc), w = to_gpu(wc);
  Tensor y = Tensor::full({2, 4, 8, 8}, NAN, DType::f32, Device::cuda(0));
  {
    InjectedExecuteFailures once(1);  // the first pick fails: the call goes on with the next candidate
    cudnn::conv_forward(x, w, y, params(1));
  }
  CHECK_TENSORS_CLOSE(to_host_f32_nchw(y), ref_forward(xc, wc, params(1)), kF32);
  auto s = cudnn::plan_cache_stats();
  CHECK(s.plans == 1);
  CHECK(s.misses == 1);
  CHECK(s.replaced == 1);
  cudnn::conv_forward(x, w, y, params(1));  // the replacement is cached
  s = cudnn::plan_cache_stats();
  CHECK(s.hits == 1);
  CHECK(s.replaced == 1);
  {
    // That plan has run: a failure now is an error naming the op and shapes, not a reason to switch.
    InjectedExecuteFailures once(1);
    CHECK_THROWS_WITH_AS(cudnn::conv_forward(x, w, y, params(1)),
                         doctest::Contains("conv_forward of x f32[2,3,8,8] NCHW cuda:0, w f32[4,3,3,3] NCHW cuda:0, y "
                                           "f32[2,4,8,8] NCHW cuda:0 with pad (1,1)"),
                         Error);
  }
  CHECK(cudnn::plan_cache_stats().replaced == 1);
  {
    InjectedExecuteFailures once(1);
    const std::string msg = test::error_message([&] { cudnn::conv_forward(x, w, y, params(1)); });
    CHECK(msg.find("which has run before: CUDNN_STATUS_EXECUTION_FAILED (injected by a test)") != std::string::npos);
  }
  cudnn::conv_forward(x, w, y, params(1));  // still the same, working plan
  CHECK_TENSORS_CLOSE(to_host_f32_nchw(y), ref_forward(xc, wc, params(1)), kF32);
  {
    // Into an accumulated output (beta 1: dw += ...) a first failure is not retried either: the failed
    // engine may already have added part of its result.
    Tensor dw = Tensor::zeros({4, 3, 3, 3}, DType::f32, Device::cuda(0));
    const Tensor dy = to_gpu(test::random_tensor({2, 4, 8, 8}, 513));
    InjectedExecuteFailures once(1);
    CHECK_THROWS_WITH_AS(cudnn::conv_backward_filter(x, dy, dw, params(1), 1.f),
                         doctest::Contains("into an accumulated output (beta 1)"), Error);
  }
  cudnn::clear_plan_cache();
}

SILICON_TEST_CASE("every engine config failing at its first execute: an error listing them all; later calls start afresh") {
  cudnn::clear_plan_cache();
  const Tensor xc = test::random_tensor({1, 3, 7, 9}, 521), wc = test::random_tensor({2, 3, 3, 3}, 522);
  const Tensor x = to_gpu(xc), w = to_gpu(wc);
  Tensor y = Tensor::empty({1, 2, 7, 9}, DType::f32, Device::cuda(0));
  std::string msg;
  {
    InjectedExecuteFailures always(1 << 20);
    msg = test::error_message([&] { cudnn::conv_forward(x, w, y, params(1)); });
  }
  INFO(msg);
  CHECK(msg.rfind("conv_forward of x f32[1,3,7,9] NCHW cuda:0", 0) == 0);
  CHECK(msg.find("engine configs cuDNN offered could run it (workspace budget ") != std::string::npos);
  CHECK(msg.find("engine config 1 (engine ") != std::string::npos);
  CHECK(msg.find(": failed at its first execute: CUDNN_STATUS_EXECUTION_FAILED (injected by a test)") !=
        std::string::npos);
  // One reason per candidate: "none of the <n> engine configs" and n lines "\n  engine config <i> (...): why".
  const size_t at = msg.find("none of the ");
  REQUIRE(at != std::string::npos);
  const int offered = std::stoi(msg.substr(at + 12));
  const std::string line = "\n  engine config ";
  int reasons = 0;
  for (size_t pos = msg.find(line); pos != std::string::npos; pos = msg.find(line, pos + 1)) ++reasons;
  CHECK(offered >= 1);
  CHECK(reasons == offered);
  CHECK(cudnn::plan_cache_stats().plans == 0);  // the exhausted configuration is not kept
  cudnn::conv_forward(x, w, y, params(1));
  CHECK_TENSORS_CLOSE(to_host_f32_nchw(y), ref_forward(xc, wc, params(1)), kF32);
  CHECK(cudnn::plan_cache_stats().plans == 1);
  cudnn::clear_plan_cache();
}

SILICON_TEST_CASE("bf16 NHWC matches the f32 reference within bf16 tolerance (all three ops)") {
  const Tolerance tol = default_tolerance(DType::bf16);
  for (const Config& c : {configs()[1], configs()[5], configs()[6]}) {  // stride 2 odd sizes, grouped, depthwise
    CAPTURE(c.name);
    const Shape ys = out_shape(c.x, c.w, c.p);
    // The reference sees the bf16-rounded inputs, so only cuDNN's accumulation and output rounding differ.
    auto rounded = [](const Tensor& t) { return t.to_dtype(DType::bf16).to_dtype(DType::f32); };
    const Tensor x = rounded(test::random_tensor(c.x, 601)), w = rounded(test::random_tensor(c.w, 602)),
                 dy = rounded(test::random_tensor(ys, 603));
    const Tensor xg = to_gpu(x, DType::bf16, Layout::NHWC), wg = to_gpu(w, DType::bf16, Layout::NHWC),
                 dyg = to_gpu(dy, DType::bf16, Layout::NHWC);
    Tensor y = Tensor::empty(ys, DType::bf16, Device::cuda(0), Layout::NHWC);
    Tensor dx = Tensor::empty(c.x, DType::bf16, Device::cuda(0), Layout::NHWC);
    Tensor dw = Tensor::empty(c.w, DType::bf16, Device::cuda(0), Layout::NHWC);
    cudnn::conv_forward(xg, wg, y, c.p);
    cudnn::conv_backward_data(dyg, wg, dx, c.p);
    cudnn::conv_backward_filter(xg, dyg, dw, c.p);
    CHECK_TENSORS_CLOSE(to_host_f32_nchw(y), ref_forward(x, w, c.p), tol);
    CHECK_TENSORS_CLOSE(to_host_f32_nchw(dx), ref_backward_data(dy, w, c.x, c.p), tol);
    CHECK_TENSORS_CLOSE(to_host_f32_nchw(dw), ref_backward_filter(x, dy, c.w, c.p), tol);
  }
}

SILICON_TEST_CASE("f32 NHWC and f16 NCHW forward match the reference") {
  const Config c = configs()[1];
  const Tensor x = test::random_tensor(c.x, 701), w = test::random_tensor(c.w, 702);
  Tensor y = Tensor::empty(out_shape(c.x, c.w, c.p), DType::f32, Device::cuda(0), Layout::NHWC);
  cudnn::conv_forward(to_gpu(x, DType::f32, Layout::NHWC), to_gpu(w, DType::f32, Layout::NHWC), y, c.p);
  CHECK_TENSORS_CLOSE(to_host_f32_nchw(y), ref_forward(x, w, c.p), kF32);

  auto rounded = [](const Tensor& t) { return t.to_dtype(DType::f16).to_dtype(DType::f32); };
  const Tensor xh = rounded(x), wh = rounded(w);
  Tensor yh = Tensor::empty(out_shape(c.x, c.w, c.p), DType::f16, Device::cuda(0));
  cudnn::conv_forward(to_gpu(xh, DType::f16), to_gpu(wh, DType::f16), yh, c.p);
  CHECK_TENSORS_CLOSE(to_host_f32_nchw(yh), ref_forward(xh, wh, c.p), default_tolerance(DType::f16));
}

SILICON_TEST_CASE("a view at an odd offset (less than 16-byte aligned) gets its own plan and the right answer") {
  // Image 1 of a batch of 2 with C·H·W = 3·5·7 = 105 floats: its address is 420 bytes in, 4-byte aligned.
  const Tensor xb = test::random_tensor({2, 3, 5, 7}, 801), w = test::random_tensor({2, 3, 3, 3}, 802);
  const Tensor xg = to_gpu(xb).slice(1, 2);
  Tensor y = Tensor::empty({1, 2, 5, 7}, DType::f32, Device::cuda(0));
  cudnn::conv_forward(xg, to_gpu(w), y, params(1));
  CHECK_TENSORS_CLOSE(to_host_f32_nchw(y), ref_forward(xb.slice(1, 2).clone(), w, params(1)), kF32);
}

SILICON_TEST_CASE("GPU argument errors: mixed devices and unsupported dtypes are refused by name") {
  const Tensor x = to_gpu(test::random_tensor({1, 3, 6, 6}, 901));
  const Tensor w_cpu = test::random_tensor({2, 3, 3, 3}, 902);
  Tensor y = Tensor::empty({1, 2, 6, 6}, DType::f32, Device::cuda(0));
  CHECK_THROWS_WITH_AS(cudnn::conv_forward(x, w_cpu, y, params(1)),
                       doctest::Contains("conv_forward: x f32[1,3,6,6] NCHW cuda:0 and w f32[2,3,3,3] NCHW cpu are on "
                                         "different devices"),
                       Error);
  const Tensor x64 = test::random_tensor({1, 3, 6, 6}, 903).to_dtype(DType::f64).to(Device::cuda(0));
  const Tensor w64 = w_cpu.to_dtype(DType::f64).to(Device::cuda(0));
  Tensor y64 = Tensor::empty({1, 2, 6, 6}, DType::f64, Device::cuda(0));
  CHECK_THROWS_WITH_AS(cudnn::conv_forward(x64, w64, y64, params(1)),
                       doctest::Contains("is f64; cuDNN convolutions take f32, bf16 or f16"), Error);
}
