// The checks every layer and loss goes through, shared by the test suites and `rdd selftest`:
//
//   compare_tensors(got, want, tol)   element-wise |got − want| ≤ atol + rtol·|want|
//   numeric_gradient(x, loss, eps)    central finite differences of a scalar function of x
//
// A typical gradient check: loss = Σ forward(x)·r with random r; backward(r) gives the analytic
// dL/dx; numeric_gradient perturbs each element of x and re-runs the forward.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/tensor.h"

namespace rdd {

struct Tolerance {
  double atol = 1e-5;
  double rtol = 1e-4;
};
// Parity tolerances per dtype (GPU vs CPU reference, or rdd vs PyTorch).
Tolerance default_tolerance(DType dtype);

struct Comparison {
  bool ok = true;
  int64_t count = 0;       // elements compared
  int64_t mismatches = 0;  // elements outside the tolerance (NaN counts as a mismatch)
  double max_abs_err = 0;
  double max_rel_err = 0;  // |got − want| / max(|want|, tiny)
  int64_t worst_index = -1;  // flat index of the largest violation (or largest error when all pass)
  double got_at_worst = 0, want_at_worst = 0;
  std::string message() const;  // one line: "ok, max abs 1.2e-06 ..." or "3 of 100 outside ..., worst at [17] ..."
};

// Any devices and floating/integer dtypes (both sides are read as double). Shapes must match.
Comparison compare_tensors(const Tensor& got, const Tensor& want, Tolerance tol);

// d loss / d x by central differences: (loss(x + eps·e_i) − loss(x − eps·e_i)) / 2eps for every i.
// x must be a CPU f32 or f64 tensor; it is perturbed in place and restored. Returns an f64 tensor of
// x's shape.
Tensor numeric_gradient(Tensor& x, const std::function<double()>& loss, double eps);

// Σ a·b over all elements, in double (CPU tensors, any floating dtype): the scalar "loss" used to turn
// a layer output into something finite differences can see.
double dot(const Tensor& a, const Tensor& b);

}  // namespace rdd
