// Pictures of what the model predicts, for TensorBoard: for the first `count` samples of a split, one
// panel of the image, its ground truth and the prediction side by side (the dataset's palette; ignore
// black), each part shrunk (nearest neighbour) to at most `max_width` pixels wide. The prediction is the
// evaluation protocol's (whole image, main logits upsampled with align_corners, argmax).
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "engine/device.h"
#include "models/seg_model.h"

namespace rdd::train {

// The model is run in eval mode and restored to its previous mode.
std::vector<data::Image> validation_panels(models::SegModel& model, const data::Dataset& dataset,
                                           const std::string& preset, Device device, int count, int max_width = 256);

}  // namespace rdd::train
