// Whole-image evaluation of a segmentation model over a dataset split (the reference protocol):
// batch 1, normalisation only, main logits upsampled bilinearly (align_corners = true) to the label
// size, argmax, one confusion matrix over the whole split.
#pragma once

#include <memory>
#include <string>

#include "apps/progress.h"
#include "data/dataset.h"
#include "engine/communicator.h"
#include "models/seg_model.h"
#include "rdd/segmentation_metrics.h"

namespace rdd::apps {

struct EvalResult {
  ConfusionMatrix confusion;
  int64_t images = 0;
  double seconds = 0;
  explicit EvalResult(int num_classes) : confusion(num_classes) {}
};

// The model is put in eval mode for the pass and restored to its previous mode afterwards.
// `preset` gives the input normalisation ("cirkd" or "mmseg"). `progress` may be null.
// With a communicator of N ranks, rank r evaluates its shard (images r, r + N, ...) and the confusion
// matrices are summed over ranks, so every rank returns the whole split's result.
EvalResult evaluate(models::SegModel& model, std::shared_ptr<const data::Dataset> dataset, const std::string& preset,
                    Device device, int workers, bool show_progress, Communicator* comm = nullptr);

// The per-class table (trainId, name, IoU) and the summary lines, as text.
std::string format_eval_table(const EvalResult& r, const std::vector<std::string>& class_names);
// {"miou": ..., "pixel_accuracy": ..., "classes": [{"id", "name", "iou"}...], "images": ...}
nlohmann::json eval_json(const EvalResult& r, const std::vector<std::string>& class_names);

}  // namespace rdd::apps
