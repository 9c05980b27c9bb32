// Test helpers that every suite reuses.
//
//   GPU_TEST_CASE("conv2d forward matches the CPU reference") { ... }   // runs only where a GPU exists
//   Tensor x = random_tensor({2, 3, 7, 9}, seed);                      // never all zero
//   CHECK_TENSORS_CLOSE(gpu_out, cpu_out, rdd::default_tolerance(DType::f32));
//   check_gradient("conv2d dL/dx", x, loss_fn, analytic_dx, eps, tol);
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <string>

#include "engine/numeric_check.h"
#include "engine/tensor.h"

// GPU cases live in the "gpu" test suite; CTest runs them in the <folder>_gpu entry, which reports
// "Skipped" on machines without a GPU and runs them on the emulated device in an RDD_CUDA=EMULATE build.
#define GPU_TEST_CASE(name) TEST_CASE(name * doctest::test_suite("gpu"))
// Cases that need what only a real GPU has — cuDNN, NCCL — live in the "silicon" suite: run with the GPU
// cases in a CUDA build on a GPU (<folder>_gpu), reported as Skipped by <folder>_silicon in the
// emulated build.
#define SILICON_TEST_CASE(name) TEST_CASE(name * doctest::test_suite("silicon"))

namespace rdd::test {

// Uniform in [lo, hi) from Philox(seed), on the CPU. Checked not to be all zero.
Tensor random_tensor(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0, DType dtype = DType::f32);
// Standard normal × std + mean.
Tensor random_normal(const Shape& shape, uint64_t seed, double mean = 0.0, double std = 1.0, DType dtype = DType::f32);
// Integer labels in [0, num_classes), a fraction `ignore_fraction` set to `ignore` (i32).
Tensor random_labels(const Shape& shape, int num_classes, uint64_t seed, double ignore_fraction = 0.0,
                     int ignore = -1);

// Fails the current test case (with the comparison's message) unless got ≈ want.
void check_close(const Tensor& got, const Tensor& want, Tolerance tol, const std::string& what);
#define CHECK_TENSORS_CLOSE(got, want, ...) ::rdd::test::check_close((got), (want), __VA_ARGS__, #got " vs " #want)

// Finite-difference gradient check: numeric d loss/d x against `analytic` (same shape as x).
// Returns the comparison so callers can log the error.
Comparison check_gradient(const std::string& what, Tensor& x, const std::function<double()>& loss,
                          const Tensor& analytic, double eps, Tolerance tol);

// The message of the rdd::Error that f throws, or "" when it throws none.
std::string error_message(const std::function<void()>& f);

// Absolute path of a file in the source tree (tests read fixtures and scripts from there).
std::string source_path(const std::string& relative);
// The Python interpreter that has numpy and torch (Debian's /usr/bin/python3).
std::string python();
// A fresh, empty temporary directory for this test (removed by the OS, not by us).
std::string temp_dir(const std::string& tag);
// Runs a shell command; returns its exit code and fills `output` with stdout+stderr.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace rdd::test
