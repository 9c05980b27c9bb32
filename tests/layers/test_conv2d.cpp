// Conv2d: closed-form cases, a direct-loop oracle for many configurations (forward and backward),
// finite-difference gradients in f64, GPU-vs-CPU parity, PyTorch parity, argument errors, the module.
#include "layers/conv2d.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/op_profile.h"
#include "engine/safetensors.h"
#include "engine/thread_pool.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::layers;

namespace {

struct Case {
  const char* name;
  int64_t n, c, h, w, k, r;  // x (n, c, h, w), w (k, c/groups, r, r)
  Conv2dOptions opt;
};

Conv2dOptions opts(int stride, int padding, int dilation, int groups, bool bias) {
  Conv2dOptions o;
  o.stride = stride;
  o.padding = padding;
  o.dilation = dilation;
  o.groups = groups;
  o.bias = bias;
  return o;
}

// Configurations every comparison walks: odd sizes, batch 1, channels 3 and 5, groups, depthwise
// (with a channel multiplier), dilation 2 and 4 with padding = dilation, stride 2, 1×1 and 7×7.
const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"3x3_pad1", 2, 3, 9, 11, 5, 3, opts(1, 1, 1, 1, true)},
      {"3x3_nopad_batch1", 1, 5, 7, 6, 4, 3, opts(1, 0, 1, 1, false)},
      {"3x3_stride2", 3, 4, 13, 10, 6, 3, opts(2, 1, 1, 1, true)},
      {"1x1", 2, 5, 7, 9, 3, 1, opts(1, 0, 1, 1, true)},
      {"1x1_stride2", 2, 3, 9, 7, 4, 1, opts(2, 0, 1, 1, false)},
      {"dilation2", 2, 3, 11, 9, 5, 3, opts(1, 2, 2, 1, true)},
      {"dilation4", 1, 5, 13, 14, 3, 3, opts(1, 4, 4, 1, false)},
      {"groups", 2, 6, 8, 7, 9, 3, opts(1, 1, 1, 3, true)},
      {"depthwise", 2, 5, 9, 8, 5, 3, opts(1, 1, 1, 5, false)},
      {"depthwise_s2_mult2", 3, 3, 11, 10, 6, 3, opts(2, 1, 1, 3, true)},
      {"depthwise_dil2", 1, 4, 10, 9, 4, 3, opts(1, 2, 2, 4, false)},
      {"7x7_stride2_pad3", 2, 3, 17, 15, 4, 7, opts(2, 3, 1, 1, false)},
      {"5x5_pad3_stride3", 2, 3, 10, 12, 2, 5, opts(3, 3, 1, 1, true)},
      {"3x3_pad3_wider_than_kernel", 2, 3, 6, 7, 4, 3, opts(1, 3, 1, 1, true)},  // dx by col2im, not transposed
  };
  return all;
}

struct Inputs {
  Tensor x, w, b, r;  // r: upstream gradient of the output's shape
};

Inputs make_inputs(const Case& cs, uint64_t seed, DType dt = DType::f32) {
  Inputs in;
  in.x = test::random_tensor({cs.n, cs.c, cs.h, cs.w}, seed, -1, 1, dt);
  in.w = test::random_tensor({cs.k, cs.c / cs.opt.groups, cs.r, cs.r}, seed + 1, -0.5, 0.5, dt);
  if (cs.opt.bias) in.b = test::random_tensor({cs.k}, seed + 2, -1, 1, dt);
  const int p = conv2d_output_size(int(cs.h), int(cs.r), cs.opt.padding, cs.opt.stride, cs.opt.dilation);
  const int q = conv2d_output_size(int(cs.w), int(cs.r), cs.opt.padding, cs.opt.stride, cs.opt.dilation);
  in.r = test::random_tensor({cs.n, cs.k, p, q}, seed + 3, -1, 1, dt);
  return in;
}

// The oracle: the convolution sum written out, in double, one output (and its adjoint) at a time.
struct Naive {
  Tensor y, dx, dw, db;  // f64
};
Naive naive_conv(const Tensor& x32, const Tensor& w32, const Tensor& b32, const Tensor& dy32, const Conv2dOptions& o) {
  const Tensor x = x32.to_dtype(DType::f64), w = w32.to_dtype(DType::f64);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), K = w.size(0), R = w.size(2),
                S = w.size(3);
  const int64_t P = (H + 2 * o.padding - o.dilation * (R - 1) - 1) / o.stride + 1;
  const int64_t Q = (W + 2 * o.padding - o.dilation * (S - 1) - 1) / o.stride + 1;
  const int64_t Cg = C / o.groups, Kg = K / o.groups;
  Naive out;
  out.y = Tensor::zeros({N, K, P, Q}, DType::f64);
  out.dx = Tensor::zeros(x.shape(), DType::f64);
  out.dw = Tensor::zeros(w.shape(), DType::f64);
  out.db = Tensor::zeros({K}, DType::f64);
  const Tensor dy = dy32.defined() ? dy32.to_dtype(DType::f64) : Tensor::zeros({N, K, P, Q}, DType::f64);
  const double* xp = x.data<double>();
  const double* wp = w.data<double>();
  const double* dyp = dy.data<double>();
  double* yp = out.y.data<double>();
  double* dxp = out.dx.data<double>();
  double* dwp = out.dw.data<double>();
  double* dbp = out.db.data<double>();
  const Tensor b = b32.defined() ? b32.to_dtype(DType::f64) : Tensor();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          const int64_t yi = ((n * K + k) * P + p) * Q + q;
          double acc = b.defined() ? b.data<double>()[k] : 0.0;
          const double g = dyp[yi];
          dbp[k] += g;
          const int64_t gi = k / Kg;
          for (int64_t cl = 0; cl < Cg; ++cl) {
            const int64_t c = gi * Cg + cl;
            for (int64_t r = 0; r < R; ++r)
              for (int64_t s = 0; s < S; ++s) {
                const int64_t ih = p * o.stride - o.padding + r * o.dilation;
                const int64_t iw = q * o.stride - o.padding + s * o.dilation;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t xi = ((n * C + c) * H + ih) * W + iw, wi = ((k * Cg + cl) * R + r) * S + s;
                acc += wp[wi] * xp[xi];
                dxp[xi] += wp[wi] * g;
                dwp[wi] += xp[xi] * g;
              }
          }
          yp[yi] = acc;
        }
  return out;
}

const Tolerance kF32{2e-5, 1e-4};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Closed-form cases
// ---------------------------------------------------------------------------------------------

TEST_CASE("conv2d: a 1x1 convolution is a matrix product over channels") {
  const Tensor x = test::random_tensor({2, 3, 4, 5}, 11);
  const Tensor w = test::random_tensor({4, 3, 1, 1}, 12);
  const Tensor y = conv2d_forward(x, w, Tensor(), {});
  REQUIRE(y.shape() == Shape{2, 4, 4, 5});
  Tensor want = Tensor::zeros({2, 4, 4, 5});
  for (int n = 0; n < 2; ++n)
    for (int k = 0; k < 4; ++k)
      for (int i = 0; i < 20; ++i) {
        float acc = 0;
        for (int c = 0; c < 3; ++c) acc += w.at<float>(k * 3 + c) * x.at<float>((n * 3 + c) * 20 + i);
        want.at<float>((n * 4 + k) * 20 + i) = acc;
      }
  CHECK_TENSORS_CLOSE(y, want, kF32);
}

TEST_CASE("conv2d: a 3x3 example worked by hand (padding 1, stride 1 and 2, bias)") {
  // x = [[1,2,3],[4,5,6],[7,8,9]], w = the 3×3 identity: y[p,q] = x[p−1,q−1] + x[p,q] + x[p+1,q+1]
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const Tensor w = Tensor::from_vector<float>({1, 0, 0, 0, 1, 0, 0, 0, 1}, {1, 1, 3, 3});
  const Tensor b = Tensor::from_vector<float>({0.5f}, {1});
  Conv2dOptions o;
  o.padding = 1;
  o.bias = true;
  const Tensor y = conv2d_forward(x, w, b, o);
  CHECK(y.to_vector<float>() == std::vector<float>{6.5f, 8.5f, 3.5f, 12.5f, 15.5f, 8.5f, 7.5f, 12.5f, 14.5f});
  o.stride = 2;
  const Tensor y2 = conv2d_forward(x, w, b, o);
  REQUIRE(y2.shape() == Shape{1, 1, 2, 2});
  CHECK(y2.to_vector<float>() == std::vector<float>{6.5f, 3.5f, 7.5f, 14.5f});
  // Backward of Σ y (stride 1): dw[r,s] = Σ of the x values each tap sees; db = 9.
  o.stride = 1;
  const Conv2dGrads g = conv2d_backward(Tensor::full({1, 1, 3, 3}, 1.0), x, w, o, true, true);
  // tap (0,0) sees x[p−1,q−1] for p,q ≥ 1: 1+2+4+5 = 12; the centre sees all: 45
  CHECK(g.dw.at<float>(0) == 12.f);
  CHECK(g.dw.at<float>(4) == 45.f);
  CHECK(g.dw.at<float>(8) == 5.f + 6 + 8 + 9);
  CHECK(g.db.at<float>(0) == 9.f);
  // dx[i,j] = number of (p,q) reaching it through a diagonal tap: corners (0,0)/(2,2) get 2, centre 3
  CHECK(g.dx.to_vector<float>() == std::vector<float>{2, 2, 1, 2, 3, 2, 1, 2, 2});
}

// ---------------------------------------------------------------------------------------------
// Against the direct-loop oracle
// ---------------------------------------------------------------------------------------------

TEST_CASE("conv2d: forward and backward match the direct-loop oracle on every configuration") {
  uint64_t seed = 100;
  for (const Case& cs : cases()) {
    INFO("case " << std::string(cs.name));
    const Inputs in = make_inputs(cs, seed += 10);
    const Naive want = naive_conv(in.x, in.w, in.b, in.r, cs.opt);
    CHECK_TENSORS_CLOSE(conv2d_forward(in.x, in.w, in.b, cs.opt), want.y, kF32);
    const Conv2dGrads g = conv2d_backward(in.r, in.x, in.w, cs.opt, true, cs.opt.bias);
    CHECK_TENSORS_CLOSE(g.dx, want.dx, kF32);
    CHECK_TENSORS_CLOSE(g.dw, want.dw, kF32);
    if (cs.opt.bias) CHECK_TENSORS_CLOSE(g.db, want.db, kF32);
    else CHECK_FALSE(g.db.defined());
    // f64 runs the same code with dgemm: tight agreement.
    const Inputs in64 = make_inputs(cs, seed, DType::f64);
    const Naive want64 = naive_conv(in64.x, in64.w, in64.b, in64.r, cs.opt);
    CHECK_TENSORS_CLOSE(conv2d_forward(in64.x, in64.w, in64.b, cs.opt), want64.y, default_tolerance(DType::f64));
    const Conv2dGrads g64 = conv2d_backward(in64.r, in64.x, in64.w, cs.opt, true, cs.opt.bias);
    CHECK_TENSORS_CLOSE(g64.dx, want64.dx, default_tolerance(DType::f64));
    CHECK_TENSORS_CLOSE(g64.dw, want64.dw, default_tolerance(DType::f64));
  }
}

TEST_CASE("conv2d: the banded path (column buffer split over output rows) and both threading paths agree") {
  // Cg·R·S·Q = 144·70 elements per output row: a 256 Ki-element buffer holds 26 rows, so P = 131 takes five
  // full bands and a last one of a single row. Batch 1 splits the work inside the image; batch 2·threads
  // spreads images over the threads.
  for (int64_t n : {int64_t(1), int64_t(2 * cpu_threads())}) {
    INFO("batch " << n);
    Case cs{"banded", n, 16, 131, 70, 3, 3, opts(1, 1, 1, 1, true)};
    const Inputs in = make_inputs(cs, 900 + uint64_t(n));
    const Naive want = naive_conv(in.x, in.w, in.b, in.r, cs.opt);
    CHECK_TENSORS_CLOSE(conv2d_forward(in.x, in.w, in.b, cs.opt), want.y, kF32);
    const Conv2dGrads g = conv2d_backward(in.r, in.x, in.w, cs.opt, true, true);
    CHECK_TENSORS_CLOSE(g.dx, want.dx, kF32);
    CHECK_TENSORS_CLOSE(g.dw, want.dw, Tolerance{1e-4, 1e-4});  // sums of up to 2·threads·131·70 products
    CHECK_TENSORS_CLOSE(g.db, want.db, Tolerance{1e-4, 1e-4});
  }
}

TEST_CASE("conv2d: need_dx = false leaves dx undefined and gives the same parameter gradients") {
  const Case& cs = cases()[2];
  const Inputs in = make_inputs(cs, 31);
  const Conv2dGrads all = conv2d_backward(in.r, in.x, in.w, cs.opt, true, true);
  const Conv2dGrads params = conv2d_backward(in.r, in.x, in.w, cs.opt, false, true);
  CHECK_FALSE(params.dx.defined());
  CHECK_TENSORS_CLOSE(params.dw, all.dw, Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(params.db, all.db, Tolerance{0, 0});
}

// ---------------------------------------------------------------------------------------------
// Finite differences (f64)
// ---------------------------------------------------------------------------------------------

TEST_CASE("conv2d: gradients match finite differences in f64 (x, w, b)") {
  const std::vector<Case> fd_cases = {
      {"3x3_pad1_bias", 2, 3, 5, 6, 4, 3, opts(1, 1, 1, 1, true)},
      {"stride2_dil2", 1, 2, 9, 8, 3, 3, opts(2, 2, 2, 1, true)},
      {"depthwise_mult2", 2, 3, 6, 5, 6, 3, opts(1, 1, 1, 3, true)},
      {"groups2_1x1", 2, 4, 3, 5, 6, 1, opts(1, 0, 1, 2, true)},
  };
  const Tolerance tol{1e-7, 1e-6};
  uint64_t seed = 500;
  for (const Case& cs : fd_cases) {
    INFO("case " << std::string(cs.name));
    Inputs in = make_inputs(cs, seed += 10, DType::f64);
    auto loss = [&] { return dot(conv2d_forward(in.x, in.w, in.b, cs.opt), in.r); };
    const Conv2dGrads g = conv2d_backward(in.r, in.x, in.w, cs.opt, true, true);
    test::check_gradient("conv2d dL/dx", in.x, loss, g.dx, 1e-6, tol);
    test::check_gradient("conv2d dL/dw", in.w, loss, g.dw, 1e-6, tol);
    test::check_gradient("conv2d dL/db", in.b, loss, g.db, 1e-6, tol);
  }
}

// ---------------------------------------------------------------------------------------------
// Argument errors
// ---------------------------------------------------------------------------------------------

TEST_CASE("conv2d: argument errors are refused with messages naming the layer and the shapes") {
  const Tensor x = test::random_tensor({2, 4, 8, 8}, 1);
  const Tensor w = test::random_tensor({6, 4, 3, 3}, 2);
  CHECK_THROWS_WITH_AS(conv2d_forward(x, test::random_tensor({6, 3, 3, 3}, 3), Tensor(), {}),
                       doctest::Contains("conv2d: input f32[2,4,8,8] NCHW cpu has 4 channels but the weight "
                                         "f32[6,3,3,3]"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x, test::random_tensor({6, 4, 11, 11}, 3), Tensor(), opts(1, 1, 1, 1, false)),
                       doctest::Contains("larger than the padded input (8 + 2·1 = 10)"), Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x, test::random_tensor({6, 2, 3, 3}, 3), Tensor(), opts(1, 1, 1, 3, false)),
                       doctest::Contains("groups 3 does not divide the input's 4 channels"), Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x, test::random_tensor({5, 2, 3, 3}, 3), Tensor(), opts(1, 1, 1, 2, false)),
                       doctest::Contains("does not divide the weight's 5 output channels"), Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x.to_dtype(DType::bf16), w.to_dtype(DType::bf16), Tensor(), {}),
                       doctest::Contains("CPU path takes f32 or f64"), Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x, w.to_dtype(DType::f64), Tensor(), {}), doctest::Contains("differ in dtype"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x.to_layout(Layout::NHWC), w, Tensor(), {}), doctest::Contains("NHWC"), Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x.view({2, 4, 64}), w, Tensor(), {}), doctest::Contains("conv2d"), Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x, w, test::random_tensor({5}, 4), opts(1, 1, 1, 1, true)),
                       doctest::Contains("bias f32[5]"), Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x, w, Tensor(), opts(0, 1, 1, 1, false)), doctest::Contains("stride 0"), Error);
  CHECK_THROWS_WITH_AS(conv2d_backward(test::random_tensor({2, 6, 7, 7}, 5), x, w, opts(1, 1, 1, 1, false)),
                       doctest::Contains("should have the output's shape [2,6,8,8]"), Error);
}

// ---------------------------------------------------------------------------------------------
// The module
// ---------------------------------------------------------------------------------------------

TEST_CASE("Conv2d module: names, initialisation, cached forward, accumulating backward, mode errors") {
  ParamStore store;
  Conv2d conv(store, "pretrained.conv1.0", 3, 8, 3, opts(2, 1, 1, 1, true));
  Conv2d head(store, "head.conv", 8, 4, 1);
  CHECK(store.find("pretrained.conv1.0.weight"));
  CHECK(store.find("pretrained.conv1.0.bias"));
  CHECK(store.find("head.conv.weight"));
  CHECK_FALSE(store.find("head.conv.bias"));
  CHECK(head.bias() == nullptr);
  CHECK(conv.weight()->shape == Shape{8, 3, 3, 3});
  CHECK(store.parameter_count() == 8 * 27 + 8 + 4 * 8);
  CHECK_THROWS_WITH_AS(conv.forward(test::random_tensor({1, 3, 8, 8}, 1)), doctest::Contains("materialized"), Error);
  store.materialize(Device::cpu());
  conv.reset_parameters(7, 0);
  head.reset_parameters(7, 10);
  const double bound = 1.0 / std::sqrt(27.0);
  double max_abs = 0;
  for (float v : conv.weight()->value.to_vector<float>()) max_abs = std::max(max_abs, double(std::fabs(v)));
  CHECK(max_abs <= bound);
  CHECK(max_abs > 0.5 * bound);

  const Tensor x = test::random_tensor({2, 3, 9, 9}, 2);
  const Tensor y = conv.forward(x);
  CHECK(y.shape() == Shape{2, 8, 5, 5});
  CHECK_TENSORS_CLOSE(y, conv2d_forward(x, conv.weight()->value, conv.bias()->value, conv.options()), Tolerance{0, 0});
  const Tensor dy = test::random_tensor(y.shape(), 3);
  const Tensor dx = conv.backward(dy);
  const Conv2dGrads want = conv2d_backward(dy, x, conv.weight()->value, conv.options(), true, true);
  CHECK_TENSORS_CLOSE(dx, want.dx, Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(conv.weight()->grad, want.dw, Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(conv.bias()->grad, want.db, Tolerance{0, 0});
  CHECK_THROWS_WITH_AS(conv.backward(dy), doctest::Contains("without a preceding training-mode forward"), Error);
  // A second step accumulates; backward_params_only computes no dx.
  conv.forward(x);
  CHECK_FALSE(conv.backward_params_only(dy).defined());
  Tensor twice = want.dw.clone();
  for (int64_t i = 0; i < twice.numel(); ++i) twice.at<float>(i) *= 2;
  CHECK_TENSORS_CLOSE(conv.weight()->grad, twice, Tolerance{1e-6, 1e-6});
  // Eval mode keeps nothing; backward is an error. Errors carry the module's name.
  conv.set_mode(Mode::eval);
  conv.forward(x);
  CHECK_THROWS_WITH_AS(conv.backward(dy), doctest::Contains("Conv2d 'pretrained.conv1.0': backward in eval mode"),
                       Error);
  CHECK_THROWS_WITH_AS(head.forward(x), doctest::Contains("Conv2d 'head.conv': conv2d: input"), Error);
  CHECK_THROWS_WITH_AS(Conv2d(store, "bad", 6, 4, 3, opts(1, 1, 1, 4, false)), doctest::Contains("groups 4"), Error);
}

// ---------------------------------------------------------------------------------------------
// GPU vs CPU
// ---------------------------------------------------------------------------------------------

GPU_TEST_CASE("conv2d: CUDA forward and backward match the CPU reference on every configuration") {
  const Device gpu = Device::cuda(0);
  uint64_t seed = 700;
  for (const Case& cs : cases()) {
    INFO("case " << std::string(cs.name));
    const Inputs in = make_inputs(cs, seed += 10);
    const Tensor b_gpu = in.b.defined() ? in.b.to(gpu) : Tensor();
    const Tensor y = conv2d_forward(in.x.to(gpu), in.w.to(gpu), b_gpu, cs.opt);
    CHECK(y.device() == gpu);
    CHECK_TENSORS_CLOSE(y, conv2d_forward(in.x, in.w, in.b, cs.opt), kF32);
    const Conv2dGrads want = conv2d_backward(in.r, in.x, in.w, cs.opt, true, cs.opt.bias);
    const Conv2dGrads got = conv2d_backward(in.r.to(gpu), in.x.to(gpu), in.w.to(gpu), cs.opt, true, cs.opt.bias);
    CHECK_TENSORS_CLOSE(got.dx, want.dx, kF32);
    CHECK_TENSORS_CLOSE(got.dw, want.dw, Tolerance{1e-4, 1e-4});
    if (cs.opt.bias) CHECK_TENSORS_CLOSE(got.db, want.db, Tolerance{1e-4, 1e-4});
    // Accumulation: a second backward into the same buffers doubles dw and db (beta = 1).
    Tensor dw = got.dw.clone();
    Tensor db = cs.opt.bias ? got.db.clone() : Tensor();
    const Tensor dx = conv2d_backward_accumulate(in.r.to(gpu), in.x.to(gpu), in.w.to(gpu), cs.opt, false, dw,
                                                 cs.opt.bias ? &db : nullptr);
    CHECK_FALSE(dx.defined());
    Tensor twice = want.dw.clone();
    for (int64_t i = 0; i < twice.numel(); ++i) twice.at<float>(i) *= 2;
    CHECK_TENSORS_CLOSE(dw, twice, Tolerance{2e-4, 1e-4});
  }
}

GPU_TEST_CASE("Conv2d module on the GPU accumulates into the flat gradient buffer") {
  ParamStore store;
  Conv2d conv(store, "c", 5, 7, 3, opts(1, 2, 2, 1, true));
  store.materialize(Device::cpu());
  conv.reset_parameters(3, 0);
  const Tensor w_cpu = conv.weight()->value.clone(), b_cpu = conv.bias()->value.clone();
  store.materialize(Device::cuda(0));
  const Tensor x = test::random_tensor({2, 5, 13, 11}, 4);
  const Tensor y = conv.forward(x.to(Device::cuda(0)));
  CHECK_TENSORS_CLOSE(y, conv2d_forward(x, w_cpu, b_cpu, conv.options()), kF32);
  const Tensor dy = test::random_tensor(y.shape(), 5);
  const Tensor dx = conv.backward(dy.to(Device::cuda(0)));
  const Conv2dGrads want = conv2d_backward(dy, x, w_cpu, conv.options(), true, true);
  CHECK_TENSORS_CLOSE(dx, want.dx, kF32);
  CHECK_TENSORS_CLOSE(conv.weight()->grad, want.dw, Tolerance{1e-4, 1e-4});
  CHECK_TENSORS_CLOSE(conv.bias()->grad, want.db, Tolerance{1e-4, 1e-4});
}

// ---------------------------------------------------------------------------------------------
// PyTorch parity
// ---------------------------------------------------------------------------------------------

TEST_CASE("conv2d: matches torch.nn.functional.conv2d forward and autograd backward") {
  const std::string dir = test::temp_dir("conv2d-torch");
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> meta;
  uint64_t seed = 300;
  for (const Case& cs : cases()) {
    const Inputs in = make_inputs(cs, seed += 10);
    const std::string p = std::string("conv.") + cs.name;
    tensors[p + ".x"] = in.x;
    tensors[p + ".w"] = in.w;
    tensors[p + ".r"] = in.r;
    if (cs.opt.bias) tensors[p + ".b"] = in.b;
    char cfg[128];
    std::snprintf(cfg, sizeof cfg, "conv %d %d %d %d", cs.opt.stride, cs.opt.padding, cs.opt.dilation, cs.opt.groups);
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
  seed = 300;
  for (const Case& cs : cases()) {
    INFO("case " << std::string(cs.name));
    const Inputs in = make_inputs(cs, seed += 10);
    const std::string p = std::string("conv.") + cs.name;
    REQUIRE(res.tensors.count(p + ".y"));
    CHECK_TENSORS_CLOSE(conv2d_forward(in.x, in.w, in.b, cs.opt), res.tensors.at(p + ".y"), kF32);
    const Conv2dGrads g = conv2d_backward(in.r, in.x, in.w, cs.opt, true, cs.opt.bias);
    CHECK_TENSORS_CLOSE(g.dx, res.tensors.at(p + ".dx"), kF32);
    CHECK_TENSORS_CLOSE(g.dw, res.tensors.at(p + ".dw"), Tolerance{5e-5, 1e-4});
    if (cs.opt.bias) CHECK_TENSORS_CLOSE(g.db, res.tensors.at(p + ".db"), Tolerance{5e-5, 1e-4});
  }
}

GPU_TEST_CASE("conv2d: the CUDA path refuses f64 and mixed devices by name") {
  const Device gpu = Device::cuda(0);
  const Tensor x = test::random_tensor({2, 3, 8, 8}, 1), w = test::random_tensor({4, 3, 3, 3}, 2);
  CHECK_THROWS_WITH_AS(conv2d_forward(x.to(gpu).to_dtype(DType::f64), w.to(gpu).to_dtype(DType::f64), Tensor(), {}),
                       doctest::Contains("CUDA path takes f32"), Error);
  CHECK_THROWS_WITH_AS(conv2d_forward(x.to(gpu), w, Tensor(), {}), doctest::Contains("conv2d"), Error);
}

TEST_CASE("conv2d: the op profile names the kind of convolution and counts 2 FLOP per multiply-add") {
  op_profile_take();
  op_profile_enable(true);
  using test::random_tensor;
  const Tensor x = random_tensor({2, 4, 9, 11}, 61);
  const Tensor w3 = random_tensor({6, 2, 3, 3}, 62);   // groups 2: 2 input channels per group
  const Tensor w1 = random_tensor({5, 4, 1, 1}, 63);
  const Tensor wd = random_tensor({4, 1, 3, 3}, 64);   // depthwise
  const Tensor y3 = conv2d_forward(x, w3, Tensor(), {.stride = 2, .padding = 1, .dilation = 1, .groups = 2});
  const Tensor y1 = conv2d_forward(x, w1, Tensor(), {});
  conv2d_forward(x, wd, Tensor(), {.stride = 1, .padding = 2, .dilation = 2, .groups = 4});
  Tensor dw = Tensor::zeros(w3.shape());
  conv2d_backward_accumulate(random_tensor(y3.shape(), 65), x, w3, {.stride = 2, .padding = 1, .dilation = 1, .groups = 2},
                             /*need_dx=*/true, dw, nullptr);
  op_profile_enable(false);
  const std::vector<OpStats> t = op_profile_take();
  REQUIRE(t.size() == 4);  // the backward's inner convolutions are not rows of their own
  CHECK(t[0].name == "conv2d kxk forward");
  CHECK(t[0].flops == 2.0 * 2 * 6 * 5 * 6 * (2 * 3 * 3));  // N·K·P·Q·(C/g·R·S), P×Q = 5×6
  CHECK(t[1].name == "conv2d 1x1 forward");
  CHECK(t[1].flops == 2.0 * y1.numel() * 4);
  CHECK(t[2].name == "conv2d depthwise forward");
  CHECK(t[2].flops == 2.0 * 2 * 4 * 9 * 11 * 9);
  CHECK(t[3].name == "conv2d kxk backward");
  CHECK(t[3].calls == 1);
  CHECK(t[3].flops == 2 * t[0].flops);  // dL/dx and dL/dw: one forward's work each
}

TEST_CASE("Conv2d module: the per-layer profile names the layer; the levels do not mix") {
  using test::random_tensor;
  ParamStore store;
  Conv2d conv(store, "head.block.0", 4, 6, 3, {.stride = 1, .padding = 1, .dilation = 1, .groups = 2});
  store.materialize(Device::cpu());
  conv.reset_parameters(1, 0);
  const Tensor x = random_tensor({2, 4, 5, 7}, 66);
  const double flops = 2.0 * (2 * 6 * 5 * 7) * (2 * 3 * 3);  // 2 · N·K·P·Q · (C/g)·R·S

  op_profile_take();
  op_profile_enable(true, OpLevel::layer);
  const Tensor y = conv.forward(x);
  conv.backward(random_tensor(y.shape(), 67));
  op_profile_enable(false);
  std::vector<OpStats> t = op_profile_take();
  REQUIRE(t.size() == 2);  // no "conv2d kxk ..." rows at the layer level
  CHECK(t[0].name == "head.block.0 forward");
  CHECK(t[0].flops == flops);
  CHECK(t[1].name == "head.block.0 backward");
  CHECK(t[1].flops == 2 * flops);

  op_profile_enable(true, OpLevel::kind);
  conv.forward(x);
  op_profile_enable(false);
  t = op_profile_take();
  REQUIRE(t.size() == 1);  // no layer rows at the kind level
  CHECK(t[0].name == "conv2d kxk forward");
  CHECK(t[0].flops == flops);
}
