// Golden cases of kind=kd_term (scripts/make_golden_kd.py): one comparison KD method (rdd/kd_terms.h) at
// weight 1 on the case's student/teacher outputs and labels, with its parameters and buffers loaded from
// golden.param.<reference state_dict name>; compares each loss term, the gradients into the student's
// outputs and into the parameters, and (CIRKD) the buffers after the step. Registered in golden_runners().
#pragma once

#include <string>
#include <vector>

#include "train/golden.h"

namespace rdd::train {

std::vector<GoldenOutput> run_golden_kd_term(const SafetensorsFile& file, const std::string& what, Device device,
                                             double rtol);

}  // namespace rdd::train
