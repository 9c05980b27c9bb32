// Evaluation modes: sliding windows, scales and flips must agree with the plain forward where they should.
#include "train/evaluate.h"
#include "harness.h"
#include "layers/eval_ops.h"
#include "layers/resize.h"

using namespace rdd;
using namespace rdd::train;

namespace {
std::unique_ptr<models::SegModel> small_model() {
  auto m = models::build_model("deeplabv3_resnet18", {4, 0.125});
  m->params().materialize(Device::cpu());
  m->init_weights(3);
  m->set_mode(layers::Mode::eval);
  return m;
}
}  // namespace

TEST_CASE("one sliding window covering the image equals the whole-image pass") {
  auto m = small_model();
  const Tensor x = test::random_tensor({1, 3, 40, 56}, 1, -50, 50);
  const Tensor whole = layers::softmax_channels(predict_scores(*m, x, 40, 56, EvalOptions{}));
  EvalOptions slide;
  slide.slide = true;
  slide.window_h = 40;
  slide.window_w = 56;
  slide.stride_h = slide.stride_w = 7;
  CHECK_TENSORS_CLOSE(predict_scores(*m, x, 40, 56, slide), whole, Tolerance{1e-6, 1e-5});
}

TEST_CASE("overlapping windows average their logits: every pixel is covered, probabilities sum to one") {
  auto m = small_model();
  const Tensor x = test::random_tensor({1, 3, 40, 56}, 2, -50, 50);
  EvalOptions slide;
  slide.slide = true;
  slide.window_h = 24;
  slide.window_w = 32;
  slide.stride_h = 10;
  slide.stride_w = 13;
  const Tensor p = predict_scores(*m, x, 40, 56, slide);
  CHECK(p.shape() == Shape{1, 4, 40, 56});
  const std::vector<float> v = p.to_vector<float>();
  for (int q = 0; q < 40 * 56; ++q) {
    double s = 0;
    for (int c = 0; c < 4; ++c) s += v[size_t(c * 40 * 56 + q)];
    CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("flip averaging is symmetric: scores of flip(x) are the flipped scores of x") {
  auto m = small_model();
  const Tensor x = test::random_tensor({1, 3, 32, 48}, 3, -50, 50);
  EvalOptions o;
  o.flip = true;
  o.scales = {0.75, 1.0};
  const Tensor a = predict_scores(*m, x, 32, 48, o);
  const Tensor b = predict_scores(*m, layers::flip_width(x), 32, 48, o);
  CHECK_TENSORS_CLOSE(layers::flip_width(b), a, Tolerance{1e-6, 1e-5});
}
