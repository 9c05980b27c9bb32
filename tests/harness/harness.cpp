#include "harness.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sys/wait.h>

#include "engine/philox.h"
#include "engine/rng.h"

namespace rdd::test {

namespace {
void require_not_all_zero(const Tensor& t, const char* who) {
  for (double v : t.to_vector<double>())
    if (v != 0.0) return;
  FAIL(who << ": generated an all-zero tensor " << t.desc() << " (tests never use all-zero data)");
}
}  // namespace

Tensor random_tensor(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  fill_uniform(t, lo, hi, seed, /*offset=*/0x7e57);
  if (t.numel() > 0) require_not_all_zero(t, "random_tensor");
  return t;
}

Tensor random_normal(const Shape& shape, uint64_t seed, double mean, double std, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  fill_normal(t, mean, std, seed, /*offset=*/0x7e58);
  if (t.numel() > 0) require_not_all_zero(t, "random_normal");
  return t;
}

Tensor random_labels(const Shape& shape, int num_classes, uint64_t seed, double ignore_fraction, int ignore) {
  Tensor t = Tensor::empty(shape, DType::i32);
  int32_t* p = t.data<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float u = philox::uniform(seed, 0x1abe1, uint64_t(i));
    p[i] = u < ignore_fraction ? ignore : int32_t(philox::u32(seed, 0x1abe2, uint64_t(i)) % uint32_t(num_classes));
  }
  return t;
}

void check_close(const Tensor& got, const Tensor& want, Tolerance tol, const std::string& what) {
  const Comparison c = compare_tensors(got, want, tol);
  INFO(what << ": " << c.message());
  CHECK(c.ok);
}

Comparison check_gradient(const std::string& what, Tensor& x, const std::function<double()>& loss,
                          const Tensor& analytic, double eps, Tolerance tol) {
  const Tensor numeric = numeric_gradient(x, loss, eps);
  const Comparison c = compare_tensors(analytic, numeric, tol);
  INFO(what << " (analytic vs finite differences, eps " << eps << "): " << c.message());
  CHECK(c.ok);
  return c;
}

std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string source_path(const std::string& relative) { return std::string(RDD_SOURCE_DIR) + "/" + relative; }

std::string python() { return RDD_PYTHON; }

std::string temp_dir(const std::string& tag) {
  namespace fs = std::filesystem;
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path p = fs::temp_directory_path() / ("rdd-test-" + tag + "-" + std::to_string(rd()));
    if (fs::create_directories(p)) return p.string();
  }
  FAIL("could not create a temporary directory");
  return {};
}

int run_command(const std::string& command, std::string* output) {
  std::string cmd = command + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace rdd::test
