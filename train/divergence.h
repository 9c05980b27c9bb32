// What went non-finite first when a training step's loss is NaN or Inf, so the message blames the right
// thing: the learning rate (a schedule that produced NaN), the weights (the previous update already
// diverged, or a file held them: models/weights_io.h refuses such files), the teacher's weights, or a
// loss term (named, with the others' values).
#pragma once

#include <string>

#include "rdd/distill.h"
#include "train/train_step.h"

namespace rdd::train {

// One message, "the loss is nan at iteration 12: ..."; reads the weights back from the device (only
// called once the run has failed).
std::string describe_non_finite_loss(const StepModels& m, const StepAt& at, const method::LossTerms& terms);

}  // namespace rdd::train
