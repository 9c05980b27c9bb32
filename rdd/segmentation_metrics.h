// Evaluation metrics: a confusion matrix accumulated over a whole split, then IoU per class, mIoU and
// pixel accuracy.
//
// Following the reference evaluation (CIRKD's SegmentationMetric): predictions are the argmax of the
// logits upsampled to the label size; ignored pixels (label −1) are skipped; IoU_c = TP_c / (TP_c +
// FP_c + FN_c); mIoU averages over ALL classes, and a class with an empty union counts as 0 (the
// reference's np.spacing(1) denominator). classes_present() tells how many classes had a non-empty
// union, so a report can say when that rule mattered.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace rdd {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int num_classes);

  // logits: (N, C, H, W) f32 at label resolution; labels: (N, H, W) i32 with −1 = ignore. Same device.
  // Label ids outside [0, C) other than −1 are an error naming the value.
  void add_logits(const Tensor& logits, const Tensor& labels);
  // predictions: (N, H, W) i32 class ids.
  void add_predictions(const Tensor& predictions, const Tensor& labels);
  // Merge another matrix (e.g. from another rank or worker).
  void merge(const ConfusionMatrix& other);
  void reset();

  int num_classes() const { return num_classes_; }
  // counts[gt · C + pred]
  const std::vector<int64_t>& counts() const { return counts_; }
  std::vector<int64_t>& mutable_counts() { return counts_; }

  std::vector<double> iou() const;   // per class, in [0, 1]
  double mean_iou() const;           // over all classes (empty union counts as 0)
  double pixel_accuracy() const;     // Σ TP / Σ labelled pixels
  int classes_present() const;       // classes with a non-empty union
  int64_t labelled_pixels() const;

 private:
  int num_classes_;
  std::vector<int64_t> counts_;
};

// argmax over channels: logits (N, C, H, W) → (N, H, W) i32, on the logits' device. Ties go to the
// lowest class id (as torch.argmax does on CPU).
Tensor argmax_channels(const Tensor& logits);

}  // namespace rdd
