#include "rdd/segmentation_metrics.h"

#include "harness.h"

using namespace rdd;

TEST_CASE("confusion matrix, IoU, mIoU and pixel accuracy on a hand-computed case") {
  // 3 classes; labels and predictions of 8 pixels, one ignored.
  //   gt:   0 0 0 1 1 2 2 -1
  //   pred: 0 0 1 1 2 2 2  0
  ConfusionMatrix cm(3);
  Tensor gt = Tensor::from_vector<int32_t>({0, 0, 0, 1, 1, 2, 2, -1}, {1, 2, 4});
  Tensor pr = Tensor::from_vector<int32_t>({0, 0, 1, 1, 2, 2, 2, 0}, {1, 2, 4});
  cm.add_predictions(pr, gt);
  CHECK(cm.labelled_pixels() == 7);
  // class 0: tp 2, fn 1, fp 0 → 2/3; class 1: tp 1, fn 1, fp 1 → 1/3; class 2: tp 2, fp 1 → 2/3
  const std::vector<double> iou = cm.iou();
  CHECK(iou[0] == doctest::Approx(2.0 / 3));
  CHECK(iou[1] == doctest::Approx(1.0 / 3));
  CHECK(iou[2] == doctest::Approx(2.0 / 3));
  CHECK(cm.mean_iou() == doctest::Approx(5.0 / 9));
  CHECK(cm.pixel_accuracy() == doctest::Approx(5.0 / 7));
  CHECK(cm.classes_present() == 3);
}

TEST_CASE("a class absent from labels and predictions counts as IoU 0 in the mean (reference rule)") {
  ConfusionMatrix cm(4);
  cm.add_predictions(Tensor::from_vector<int32_t>({0, 1, 2}, {1, 1, 3}), Tensor::from_vector<int32_t>({0, 1, 2}, {1, 1, 3}));
  CHECK(cm.mean_iou() == doctest::Approx(0.75));
  CHECK(cm.classes_present() == 3);
  ConfusionMatrix other(4);
  other.add_predictions(Tensor::from_vector<int32_t>({3}, {1, 1, 1}), Tensor::from_vector<int32_t>({3}, {1, 1, 1}));
  cm.merge(other);
  CHECK(cm.mean_iou() == doctest::Approx(1.0));
}

TEST_CASE("argmax over channels picks the largest logit, lowest id on ties") {
  // N=1, C=3, H=1, W=3: pixel 0 → class 2, pixel 1 → tie between 0 and 1 → 0, pixel 2 → class 1
  Tensor logits = Tensor::from_vector<float>({0, 5, 1, /*c1*/ 1, 5, 7, /*c2*/ 3, 2, 2}, {1, 3, 1, 3});
  CHECK(argmax_channels(logits).to_vector<int32_t>() == std::vector<int32_t>{2, 0, 1});
  ConfusionMatrix cm(3);
  cm.add_logits(logits, Tensor::from_vector<int32_t>({2, 0, 1}, {1, 1, 3}));
  CHECK(cm.mean_iou() == doctest::Approx(1.0));
}

TEST_CASE("bad label ids are refused with the value") {
  ConfusionMatrix cm(3);
  CHECK_THROWS_WITH_AS(cm.add_predictions(Tensor::from_vector<int32_t>({0, 1}, {1, 1, 2}),
                                          Tensor::from_vector<int32_t>({0, 7}, {1, 1, 2})),
                       doctest::Contains("label id 7 is outside [0, 3)"), Error);
  CHECK_THROWS_AS(cm.add_predictions(Tensor::from_vector<int32_t>({0}, {1, 1, 1}),
                                     Tensor::from_vector<int32_t>({0, 1}, {1, 1, 2})), Error);
  CHECK_THROWS_AS(cm.add_logits(Tensor::zeros({1, 2, 1, 1}), Tensor::from_vector<int32_t>({0}, {1, 1, 1})), Error);
}

GPU_TEST_CASE("GPU argmax and confusion matrix equal the CPU ones") {
  for (int C : {3, 19, 150}) {
    Tensor logits = test::random_tensor({2, C, 13, 17}, uint64_t(C));
    Tensor labels = test::random_labels({2, 13, 17}, C, uint64_t(C) + 1, 0.1);
    ConfusionMatrix cpu(C), gpu(C);
    cpu.add_logits(logits, labels);
    gpu.add_logits(logits.to(Device::cuda(0)), labels.to(Device::cuda(0)));
    CHECK(gpu.counts() == cpu.counts());
  }
  ConfusionMatrix cm(3);
  CHECK_THROWS_WITH_AS(cm.add_predictions(Tensor::from_vector<int32_t>({0, 1}, {1, 1, 2}).to(Device::cuda(0)),
                                          Tensor::from_vector<int32_t>({0, 9}, {1, 1, 2}).to(Device::cuda(0))),
                       doctest::Contains("label id 9"), Error);
}
