// What a segmentation network returns (models::SegModel::forward) and what the distillation terms read
// (method::DistillTerm): one struct for both, so the trainer hands a model's outputs on unchanged.
#pragma once

#include "engine/tensor.h"

namespace rdd {

struct NetOutputs {
  Tensor main;     // (N, classes, H/8, W/8) logits at output stride 8
  Tensor aux;      // (N, classes, H/8, W/8) aux-head logits; undefined without an aux head
  Tensor feature;  // (N, F, H/8, W/8) the head feature, the classifier's input
};

}  // namespace rdd
