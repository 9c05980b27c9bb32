#include "apps/model_info.h"

#include <cstdio>
#include <sstream>

#include "engine/error.h"
#include "models/golden.h"
#include "models/seg_model.h"

namespace rdd::apps {

std::pair<int, int> parse_input_size(const std::string& s) {
  const size_t x = s.find('x');
  int h = 0, w = 0;
  try {
    size_t used_h = 0, used_w = 0;
    RDD_CHECK(x != std::string::npos, "");
    h = std::stoi(s.substr(0, x), &used_h);
    w = std::stoi(s.substr(x + 1), &used_w);
    RDD_CHECK(used_h == x && used_w == s.size() - x - 1, "");
  } catch (const std::exception&) {
    fail("--input '", s, "' is not HxW (e.g. 512x1024)");
  }
  RDD_CHECK(h >= 8 && w >= 8, "--input ", s, ": height and width must be at least 8");
  return {h, w};
}

namespace {
std::string with_commas(int64_t v) {
  const std::string digits = std::to_string(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}
std::string shape_x(const Shape& s) {
  std::ostringstream os;
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "×" : "") << s[i];
  return os.str();
}
// Left-aligned in `width` terminal columns (UTF-8: "→" and "×" are one column each).
std::string pad(const std::string& s, size_t width) {
  size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xC0) != 0x80;
  return cols >= width ? s + " " : s + std::string(width - cols, ' ');
}
}  // namespace

int print_model_info(const ModelInfoOptions& o) {
  const auto [h, w] = parse_input_size(o.input);
  models::ModelOptions mo;
  mo.num_classes = o.num_classes;
  mo.width = o.width;
  auto model = models::build_model(o.model, mo);
  const models::LayerTable t = model->trace({1, 3, h, w});
  const int64_t params = model->params().parameter_count();
  std::printf("model: %s, %d classes, width %g, %s\n", o.model.c_str(), o.num_classes, o.width,
              model->has_aux() ? "aux FCN head on layer3 (included below)" : "no aux head");
  std::printf("input: 1×3×%d×%d (one image, N×C×H×W); outputs at stride 8\n", h, w);
  std::printf("parameters: %s (%.2f M)\n", with_commas(params).c_str(), double(params) / 1e6);
  if (o.layers) {
    std::printf("\n%-40s %-34s %-18s %12s %12s\n", "layer", "op", "output", "params", "MMAC");
    for (const models::LayerRow& r : t.rows)
      std::printf("%s%s%s%12s %12.2f\n", pad(r.name, 41).c_str(), pad(r.op, 35).c_str(),
                  pad(shape_x(r.output), 19).c_str(), r.params ? with_commas(r.params).c_str() : "-",
                  double(r.macs) / 1e6);
    std::printf("\n");
  }
  const double gmac = double(t.total_macs()) / 1e9;
  std::printf("total: %s parameters; %.2f GMAC (multiply-adds) = %.2f GFLOP per forward at %dx%d\n",
              with_commas(t.total_params()).c_str(), gmac, 2 * gmac, h, w);
  std::printf("  counted: every convolution (FLOP = 2 × MAC), output sizes with dilation; BN, ReLU, pooling and "
              "resize not counted\n");
  std::printf("  the RDD paper's counter (CIRKD utils/flops.py, dilation ignored): %.1f GMAC at %dx%d\n",
              double(t.total_paper_macs()) / 1e9, h, w);
  return 0;
}

std::vector<GoldenOutput> run_golden_model(const SafetensorsFile& file, const std::string& what, Device device,
                                           double rtol) {
  std::vector<GoldenOutput> out;
  for (const models::GoldenCheck& c : models::run_model_golden(file, device, rtol, what)) {
    RDD_CHECK(c.detail.empty(), what, ": ", c.what, ": ", c.detail);
    out.push_back({c.what, c.rel_error, c.pass});
  }
  return out;
}

}  // namespace rdd::apps
