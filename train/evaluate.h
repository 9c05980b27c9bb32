// Whole-image evaluation of a segmentation model over a dataset split (the reference protocol):
// batch 1, normalisation only, main logits upsampled bilinearly (align_corners = true) to the label
// size, argmax, one confusion matrix over the whole split.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "dist/communicator.h"
#include "models/seg_model.h"
#include "rdd/segmentation_metrics.h"

namespace rdd::train {

struct EvalResult {
  ConfusionMatrix confusion;
  int64_t images = 0;
  double seconds = 0;
  bool interrupted = false;  // a stop was requested (EvalOptions::stop_on_request): the counts cover part of the split
  explicit EvalResult(int num_classes) : confusion(num_classes) {}
};

// Beyond the reference protocol (options of `rdd eval`): several scales and/or a horizontal flip,
// whose softmax probabilities are averaged at the label size; and a sliding window (windows of
// `window_h × window_w` every `stride_h, stride_w`, the image padded with 0 to at least one window,
// overlapping windows' logits averaged) for images too large for one pass.
struct EvalOptions {
  std::vector<double> scales{1.0};
  bool flip = false;
  bool slide = false;
  int window_h = 512, window_w = 1024;
  int stride_h = 341, stride_w = 683;  // ≈ 2/3 of the window, as mmseg's slide mode
  // Within a training run: a stop request (SIGINT/SIGTERM, train/signals.h) ends the pass after the image
  // in progress, so that a pre-empted run does not first evaluate the whole split. Every rank still takes
  // part in the final sum, wherever it stopped.
  bool stop_on_request = false;
  bool single_pass() const { return scales.size() == 1 && scales[0] == 1.0 && !flip && !slide; }
};

// The main logits of one image batch at the label size (h, w), under `o`: for single_pass() the
// upsampled logits themselves, otherwise the averaged softmax probabilities (same argmax semantics).
Tensor predict_scores(models::SegModel& model, const Tensor& images, int out_h, int out_w, const EvalOptions& o);

// The model is put in eval mode for the pass and restored to its previous mode afterwards.
// `preset` gives the input normalisation ("cirkd" or "mmseg"). `progress` may be null.
// With a communicator of N ranks, rank r evaluates its shard (images r, r + N, ...) and the confusion
// matrices are summed over ranks, so every rank returns the whole split's result.
EvalResult evaluate(models::SegModel& model, std::shared_ptr<const data::Dataset> dataset, const std::string& preset,
                    Device device, int workers, bool show_progress, dist::Communicator* comm = nullptr,
                    const EvalOptions& options = {});

// The per-class table (trainId, name, IoU) and the summary lines, as text.
std::string format_eval_table(const EvalResult& r, const std::vector<std::string>& class_names);
// {"miou": ..., "pixel_accuracy": ..., "classes": [{"id", "name", "iou"}...], "images": ...}
nlohmann::json eval_json(const EvalResult& r, const std::vector<std::string>& class_names);

}  // namespace rdd::train
