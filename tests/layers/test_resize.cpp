#include "layers/resize.h"

#include "layers/resize_taps.h"

#include <map>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "harness.h"

using namespace rdd;
using rdd::layers::bilinear_resize_backward;
using rdd::layers::bilinear_resize_forward;

namespace {

// (in_h, in_w, out_h, out_w): upsampling, downsampling, odd ratios, size 1 on either side, identity.
const std::vector<std::array<int, 4>> kSizes = {{3, 5, 7, 9}, {9, 11, 4, 3}, {8, 8, 64, 64}, {1, 1, 3, 4},
                                                {5, 6, 1, 1}, {1, 7, 4, 1}, {6, 5, 6, 5},  {13, 7, 5, 20}};

}  // namespace

TEST_CASE("bilinear resize: closed-form values") {
  // 2x2 → 3x3, align_corners: the centre is the mean of the four, edge midpoints the mean of two.
  Tensor x = Tensor::from_vector<float>({1, 3, 5, 11}, {1, 1, 2, 2});
  std::vector<float> y = bilinear_resize_forward(x, 3, 3, true).to_vector<float>();
  CHECK(y == std::vector<float>({1, 2, 3, 3, 5, 7, 5, 8, 11}));
  // 1x4 → 1x2 without align_corners: src = 2·(d + 0.5) − 0.5 = 0.5, 2.5 — means of neighbouring pairs.
  Tensor row = Tensor::from_vector<double>({2, 4, 10, 20}, {1, 1, 1, 4});
  CHECK(bilinear_resize_forward(row, 1, 2, false).to_vector<double>() == std::vector<double>({3, 15}));
  // Output size 1: align_corners reads index 0; otherwise src = 4·0.5 − 0.5 = 1.5, the mean of x[1], x[2].
  CHECK(bilinear_resize_forward(row, 1, 1, true).to_vector<double>() == std::vector<double>({2}));
  CHECK(bilinear_resize_forward(row, 1, 1, false).to_vector<double>() == std::vector<double>({7}));
  // 1x2 → 1x4 without align_corners: src = 0.5·(d + 0.5) − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (→ x[1]).
  Tensor two = Tensor::from_vector<double>({4, 8}, {1, 1, 1, 2});
  CHECK(bilinear_resize_forward(two, 1, 4, false).to_vector<double>() == std::vector<double>({4, 5, 7, 8}));
  // Input size 1: every output equals the input; same size: the identity.
  Tensor one = Tensor::from_vector<float>({2.5f, -1.f}, {1, 2, 1, 1});
  for (bool ac : {true, false}) {
    CHECK(bilinear_resize_forward(one, 2, 3, ac).to_vector<float>() ==
          std::vector<float>({2.5f, 2.5f, 2.5f, 2.5f, 2.5f, 2.5f, -1, -1, -1, -1, -1, -1}));
    Tensor r = test::random_tensor({2, 3, 5, 7}, 4);
    CHECK(bilinear_resize_forward(r, 5, 7, ac).to_vector<float>() == r.to_vector<float>());
  }
  // Backward of a 1x1 input sums dy; backward of the 2x2 → 3x3 case spreads each dy by its weights.
  Tensor dy = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {1, 1, 2, 3});
  CHECK(bilinear_resize_backward(dy, 1, 1, true).to_vector<double>() == std::vector<double>({21}));
  Tensor g = Tensor::from_vector<double>({0, 0, 0, 0, 4, 0, 0, 0, 0}, {1, 1, 3, 3});
  CHECK(bilinear_resize_backward(g, 2, 2, true).to_vector<double>() == std::vector<double>({1, 1, 1, 1}));
}

TEST_CASE("bilinear resize: backward is the adjoint of forward and matches finite differences (f64)") {
  for (bool ac : {true, false}) {
    for (const auto& s : kSizes) {
      CAPTURE(ac);
      CAPTURE(s[0]); CAPTURE(s[1]); CAPTURE(s[2]); CAPTURE(s[3]);
      Tensor x = test::random_tensor({2, 3, s[0], s[1]}, 11, -1, 1, DType::f64);
      const Tensor r = test::random_tensor({2, 3, s[2], s[3]}, 12, -1, 1, DType::f64);
      const Tensor dx = bilinear_resize_backward(r, s[0], s[1], ac);
      CHECK(std::abs(dot(bilinear_resize_forward(x, s[2], s[3], ac), r) - dot(x, dx)) < 1e-10);
      if (x.numel() <= 200) {
        auto loss = [&] { return dot(bilinear_resize_forward(x, s[2], s[3], ac), r); };
        test::check_gradient("resize dL/dx", x, loss, dx, 1e-6, {1e-8, 1e-7});
      }
    }
  }
}

TEST_CASE("bilinear resize: the CUDA backward's separable gather (run on the host) matches the CPU scatter") {
  namespace rd = rdd::layers::resize_detail;
  std::vector<std::array<int, 4>> sizes = kSizes;
  sizes.push_back({64, 128, 512, 1024});  // the training case: stride 8 → label size
  sizes.push_back({2, 3, 17, 29});
  for (bool ac : {true, false}) {
    for (const auto& s : sizes) {
      CAPTURE(ac);
      CAPTURE(s[0]); CAPTURE(s[1]); CAPTURE(s[2]); CAPTURE(s[3]);
      const int in_h = s[0], in_w = s[1], out_h = s[2], out_w = s[3];
      const int64_t planes = 2;
      const Tensor dy = test::random_tensor({1, planes, out_h, out_w}, 13, -1, 1);
      const float sh = layers::detail::resize_scale<float>(in_h, out_h, ac), sw = layers::detail::resize_scale<float>(in_w, out_w, ac);
      // The same tap rule on both sides.
      for (int d = 0; d < out_w; d += std::max(1, out_w / 7)) {
        const rd::Tap t = rd::tap(d, in_w, sw, ac);
        CHECK(t.i0 >= 0);
        CHECK(t.i1 < in_w);
        CHECK(t.l0 + t.l1 == doctest::Approx(1.0));
      }
      std::vector<float> scratch(size_t(planes * out_h * in_w)), dx(size_t(planes * in_h * in_w));
      const float* g = dy.data<float>();
      for (int64_t o = 0; o < planes * out_h; ++o)
        for (int i = 0; i < in_w; ++i) scratch[size_t(o * in_w + i)] = rd::gather_axis(g, o, i, 0, in_w, out_w, 1, sw, ac);
      for (int64_t o = 0; o < planes; ++o)
        for (int i = 0; i < in_h; ++i)
          for (int k = 0; k < in_w; ++k)
            dx[size_t((o * in_h + i) * in_w + k)] = rd::gather_axis(scratch.data(), o, i, k, in_h, out_h, in_w, sh, ac);
      const double fan = double(out_h) * out_w / (double(in_h) * in_w) + 4;
      CHECK_TENSORS_CLOSE(Tensor::from_vector(dx, {1, planes, in_h, in_w}), bilinear_resize_backward(dy, in_h, in_w, ac),
                          Tolerance{2e-6 * fan, 1e-5});
    }
  }
}

TEST_CASE("bilinear resize: f32 agrees with the f64 reference") {
  for (bool ac : {true, false}) {
    const Tensor x = test::random_tensor({1, 5, 9, 13}, 21);
    const Tensor y32 = bilinear_resize_forward(x, 65, 97, ac);
    const Tensor y64 = bilinear_resize_forward(x.to_dtype(DType::f64), 65, 97, ac);
    CHECK_TENSORS_CLOSE(y32, y64, Tolerance{2e-6, 1e-5});  // λ is rounded to f32
  }
}

TEST_CASE("bilinear resize: matches PyTorch F.interpolate (forward and backward)") {
  struct Case { std::string name; int n, c, h, w, oh, ow, ac; };
  std::vector<Case> all;
  int k = 0;
  for (int ac : {1, 0})
    for (const auto& s : kSizes) all.push_back({std::string(1, 'c').append(std::to_string(k++)), 2, 3, s[0], s[1], s[2], s[3], ac});
  all.push_back({"big_ac", 1, 19, 64, 128, 512, 1024, 1});
  all.push_back({"odd", 3, 5, 17, 23, 121, 181, 1});
  std::map<std::string, Tensor> inputs;
  std::map<std::string, std::string> meta;
  for (const Case& c : all) {
    inputs["x." + c.name] = test::random_tensor({c.n, c.c, c.h, c.w}, 30 + uint64_t(k), -3, 3);
    inputs["r." + c.name] = test::random_tensor({c.n, c.c, c.oh, c.ow}, 31 + uint64_t(k), -1, 1);
    meta[c.name] = std::to_string(c.oh) + " " + std::to_string(c.ow) + " " + std::to_string(c.ac);
    ++k;
  }
  const std::string dir = test::temp_dir("resize");
  write_safetensors(dir + "/in.safetensors", inputs, meta);
  std::string out;
  const int rc = test::run_command(test::python() + " " + test::source_path("scripts/torch_parity_resize.py") + " " +
                                       dir + "/in.safetensors " + dir + "/out.safetensors",
                                   &out);
  REQUIRE_MESSAGE(rc == 0, out);
  const SafetensorsFile torch_out = read_safetensors(dir + "/out.safetensors");
  for (const Case& c : all) {
    CAPTURE(c.name);
    const Tensor& x = inputs.at("x." + c.name);
    const Tensor& r = inputs.at("r." + c.name);
    REQUIRE(torch_out.tensors.count("y." + c.name) == 1);
    REQUIRE(torch_out.tensors.count("dx." + c.name) == 1);
    CHECK_TENSORS_CLOSE(bilinear_resize_forward(x, c.oh, c.ow, c.ac != 0), torch_out.tensors.at("y." + c.name),
                        Tolerance{1e-6, 1e-5});
    // The backward sums many products in a different order than PyTorch's: an absolute tolerance that
    // scales with the number of dy elements feeding one dx element.
    const double fan = double(c.oh) * c.ow / (double(c.h) * c.w) + 4;
    CHECK_TENSORS_CLOSE(bilinear_resize_backward(r, c.h, c.w, c.ac != 0), torch_out.tensors.at("dx." + c.name),
                        Tolerance{2e-6 * fan, 1e-5});
  }
}

TEST_CASE("bilinear resize: argument errors name the layer and the shapes") {
  const Tensor x = test::random_tensor({1, 2, 4, 4}, 5);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK(message([&] { bilinear_resize_forward(x, 0, 3, true); }).find("bilinear_resize_forward: output size 0x3") != std::string::npos);
  CHECK(message([&] { bilinear_resize_forward(x.view({2, 4, 4}), 3, 3, true); }).find("bilinear_resize_forward") != std::string::npos);
  CHECK(message([&] { bilinear_resize_forward(x.to_dtype(DType::bf16), 3, 3, true); }).find("bf16[1,2,4,4]") != std::string::npos);
  CHECK_THROWS_AS(bilinear_resize_forward(x.to_dtype(DType::bf16), 3, 3, true), Error);
  CHECK_THROWS_AS(bilinear_resize_forward(x.to_layout(Layout::NHWC), 3, 3, true), Error);
  CHECK(message([&] { bilinear_resize_backward(x, 2, -1, false); }).find("bilinear_resize_backward: input size 2x-1") != std::string::npos);
}

GPU_TEST_CASE("bilinear resize: CUDA matches the CPU reference") {
  const Device g = Device::cuda(0);
  for (bool ac : {true, false}) {
    for (const auto& s : kSizes) {
      CAPTURE(ac);
      CAPTURE(s[0]); CAPTURE(s[1]); CAPTURE(s[2]); CAPTURE(s[3]);
      const Tensor x = test::random_tensor({3, 5, s[0], s[1]}, 41, -2, 2);
      const Tensor r = test::random_tensor({3, 5, s[2], s[3]}, 42, -1, 1);
      CHECK_TENSORS_CLOSE(bilinear_resize_forward(x.to(g), s[2], s[3], ac).to(Device::cpu()),
                          bilinear_resize_forward(x, s[2], s[3], ac), Tolerance{1e-6, 1e-5});
      const double fan = double(s[2]) * s[3] / (double(s[0]) * s[1]) + 4;
      CHECK_TENSORS_CLOSE(bilinear_resize_backward(r.to(g), s[0], s[1], ac).to(Device::cpu()),
                          bilinear_resize_backward(r, s[0], s[1], ac), Tolerance{2e-6 * fan, 1e-5});
    }
  }
  // A training-sized case: stride-8 logits to a 512x1024 label.
  const Tensor x = test::random_tensor({2, 19, 64, 128}, 43, -5, 5);
  CHECK_TENSORS_CLOSE(bilinear_resize_forward(x.to(g), 512, 1024, true).to(Device::cpu()),
                      bilinear_resize_forward(x, 512, 1024, true), Tolerance{1e-5, 1e-5});
  const Tensor r = test::random_tensor({2, 19, 512, 1024}, 44, -1, 1);
  CHECK_TENSORS_CLOSE(bilinear_resize_backward(r.to(g), 64, 128, true).to(Device::cpu()),
                      bilinear_resize_backward(r, 64, 128, true), Tolerance{1e-4, 1e-4});
}
