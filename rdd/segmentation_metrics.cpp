#include "rdd/segmentation_metrics.h"
#include "rdd/segmentation_metrics_cuda.h"

#include <limits>

#include "engine/thread_pool.h"

#if RDD_WITH_CUDA
#include "engine/cuda_context.h"
#endif

namespace rdd {

ConfusionMatrix::ConfusionMatrix(int num_classes) : num_classes_(num_classes) {
  RDD_CHECK(num_classes > 0, "ConfusionMatrix: num_classes must be positive, got ", num_classes);
  counts_.assign(size_t(num_classes) * size_t(num_classes), 0);
}

void ConfusionMatrix::reset() { std::fill(counts_.begin(), counts_.end(), 0); }

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  RDD_CHECK(other.num_classes_ == num_classes_, "ConfusionMatrix::merge: ", other.num_classes_, " vs ",
            num_classes_, " classes");
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

Tensor argmax_channels(const Tensor& logits) {
  require_ndim(logits, 4, "argmax_channels", "logits");
  require_dtype(logits, DType::f32, "argmax_channels", "logits");
  require_layout(logits, Layout::NCHW, "argmax_channels", "logits");
  const int64_t N = logits.size(0), C = logits.size(1), HW = logits.size(2) * logits.size(3);
  Tensor out = Tensor::empty({N, logits.size(2), logits.size(3)}, DType::i32, logits.device());
  if (logits.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::argmax_channels(logits.data<float>(), out.data<int32_t>(), N, C, HW,
                             cuda_context(logits.device().index).compute_stream());
#endif
    return out;
  }
  const float* x = logits.data<float>();
  int32_t* o = out.data<int32_t>();
  parallel_for(0, N * HW, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t n = i / HW, p = i % HW;
      const float* px = x + n * C * HW + p;
      int32_t best = 0;
      float best_v = px[0];
      for (int64_t c = 1; c < C; ++c)
        if (px[c * HW] > best_v) {
          best_v = px[c * HW];
          best = int32_t(c);
        }
      o[i] = best;
    }
  }, 4096);
  return out;
}

void ConfusionMatrix::add_logits(const Tensor& logits, const Tensor& labels) {
  RDD_CHECK(logits.ndim() == 4 && logits.size(1) == num_classes_, "ConfusionMatrix: logits ", logits.desc(),
            " do not have ", num_classes_, " channels");
  add_predictions(argmax_channels(logits), labels);
}

void ConfusionMatrix::add_predictions(const Tensor& pred, const Tensor& labels) {
  require_dtype(pred, DType::i32, "ConfusionMatrix", "predictions");
  require_dtype(labels, DType::i32, "ConfusionMatrix", "labels");
  RDD_CHECK(pred.shape() == labels.shape(), "ConfusionMatrix: predictions ", pred.desc(), " and labels ",
            labels.desc(), " differ in shape");
  require_same_device(pred, labels, "ConfusionMatrix");
  const int C = num_classes_;
  const int64_t n = pred.numel();
  if (pred.device().is_cuda()) {
#if RDD_WITH_CUDA
    const Device d = pred.device();
    Tensor counts = Tensor::zeros({int64_t(C) * C}, DType::i64, d);
    Tensor bad = Tensor::empty({2}, DType::i32, d);  // filled on the device: no upload per call
    bad.slice(0, 1).fill_(-1);
    bad.slice(1, 2).fill_(double(std::numeric_limits<int32_t>::min()));
    cuda::confusion_accumulate(pred.data<int32_t>(), labels.data<int32_t>(), n, C,
                                  reinterpret_cast<unsigned long long*>(counts.data<int64_t>()), bad.data<int32_t>(),
                                  cuda_context(d.index).compute_stream());
    const std::vector<int32_t> b = bad.to_vector<int32_t>();
    RDD_CHECK(b[0] == -1, "ConfusionMatrix: label id ", b[0], " is outside [0, ", C,
              ") and is not the ignore value -1");
    RDD_CHECK(b[1] == std::numeric_limits<int32_t>::min(), "ConfusionMatrix: predicted class ", b[1],
              " is outside [0, ", C, ")");
    const std::vector<int64_t> c = counts.to_vector<int64_t>();
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += c[i];
#endif
    return;
  }
  const int32_t* p = pred.data<int32_t>();
  const int32_t* y = labels.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (y[i] == -1) continue;
    RDD_CHECK(y[i] >= 0 && y[i] < C, "ConfusionMatrix: label id ", y[i], " is outside [0, ", C,
              ") and is not the ignore value -1");
    RDD_CHECK(p[i] >= 0 && p[i] < C, "ConfusionMatrix: predicted class ", p[i], " is outside [0, ", C, ")");
    ++counts_[size_t(y[i]) * size_t(C) + size_t(p[i])];
  }
}

std::vector<double> ConfusionMatrix::iou() const {
  const int C = num_classes_;
  std::vector<double> r(size_t(C), 0.0);
  for (int c = 0; c < C; ++c) {
    int64_t tp = counts_[size_t(c) * C + c], row = 0, col = 0;
    for (int k = 0; k < C; ++k) {
      row += counts_[size_t(c) * C + k];  // ground truth c
      col += counts_[size_t(k) * C + c];  // predicted c
    }
    const int64_t uni = row + col - tp;
    r[size_t(c)] = uni > 0 ? double(tp) / double(uni) : 0.0;
  }
  return r;
}

double ConfusionMatrix::mean_iou() const {
  const std::vector<double> v = iou();
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

int64_t ConfusionMatrix::labelled_pixels() const {
  int64_t s = 0;
  for (int64_t v : counts_) s += v;
  return s;
}

double ConfusionMatrix::pixel_accuracy() const {
  int64_t tp = 0;
  for (int c = 0; c < num_classes_; ++c) tp += counts_[size_t(c) * num_classes_ + c];
  const int64_t all = labelled_pixels();
  return all > 0 ? double(tp) / double(all) : 0.0;
}

int ConfusionMatrix::classes_present() const {
  const int C = num_classes_;
  int present = 0;
  for (int c = 0; c < C; ++c) {
    int64_t u = 0;
    for (int k = 0; k < C; ++k) u += counts_[size_t(c) * C + k] + counts_[size_t(k) * C + c];
    if (u > 0) ++present;
  }
  return present;
}

}  // namespace rdd
