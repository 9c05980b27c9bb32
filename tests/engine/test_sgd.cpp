#include "engine/sgd.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "harness.h"

using namespace rdd;

TEST_CASE("poly_lr follows the reference: base at iteration 1, (1 - (it-1)/max)^0.9 after") {
  CHECK(poly_lr(0.02, 1, 40000) == 0.02);
  CHECK(poly_lr(0.02, 20001, 40000) == doctest::Approx(0.02 * std::pow(0.5, 0.9)).epsilon(1e-12));
  CHECK(poly_lr(0.01, 40000, 40000) == doctest::Approx(0.01 * std::pow(1.0 / 40000, 0.9)).epsilon(1e-12));
  CHECK(poly_lr(1.0, 3, 4, 1.0) == doctest::Approx(0.5));
  CHECK_THROWS_AS(poly_lr(0.02, 0, 10), Error);
  CHECK_THROWS_AS(poly_lr(0.02, 11, 10), Error);
}

TEST_CASE("sgd_update: two steps by hand") {
  // w=1, g=0.5, wd=0.1, momentum 0.9, lr 0.1:
  // step 1: g' = 0.6, m = 0.6, w = 1 - 0.06 = 0.94
  // step 2 (g=0.5): g' = 0.5 + 0.094 = 0.594, m = 0.54 + 0.594 = 1.134, w = 0.94 - 0.1134 = 0.8266
  float w = 1, g = 0.5f, m = 0;
  SgdOptions o{0.9, 0.1, false};
  sgd_update(&w, &g, &m, 1, Device::cpu(), 0.1, o);
  CHECK(m == doctest::Approx(0.6));
  CHECK(w == doctest::Approx(0.94));
  sgd_update(&w, &g, &m, 1, Device::cpu(), 0.1, o);
  CHECK(m == doctest::Approx(1.134));
  CHECK(w == doctest::Approx(0.8266));
}

TEST_CASE("Sgd over a ParamStore matches torch.optim.SGD (momentum, weight decay, Nesterov)") {
  for (bool nesterov : {false, true}) {
    ParamStore store;
    Param* a = store.add_parameter("a.weight", {3, 5});
    Param* b = store.add_parameter("b.bias", {7});
    store.materialize(Device::cpu());
    fill_uniform(a->value, -1, 1, 11, 0);
    fill_uniform(b->value, -1, 1, 11, 1);
    nlohmann::json case_json;
    std::vector<float> w0 = a->value.to_vector<float>(), wb = b->value.to_vector<float>();
    w0.insert(w0.end(), wb.begin(), wb.end());
    case_json["w"] = w0;
    case_json["momentum"] = 0.9;
    case_json["weight_decay"] = 1e-4;
    case_json["nesterov"] = nesterov;
    Sgd sgd(store, {0.9, 1e-4, nesterov});
    for (int it = 1; it <= 4; ++it) {
      fill_uniform(a->grad, -2, 2, 12, uint64_t(it));
      fill_uniform(b->grad, -2, 2, 13, uint64_t(it));
      std::vector<float> g = a->grad.to_vector<float>(), gb = b->grad.to_vector<float>();
      g.insert(g.end(), gb.begin(), gb.end());
      case_json["grads"].push_back(g);
      const double lr = poly_lr(0.02, it, 4);
      case_json["lrs"].push_back(lr);
      sgd.step(lr);
    }
    CHECK(sgd.steps() == 4);
    const std::string dir = test::temp_dir("sgd");
    const std::string path = dir + "/case.json";
    std::ofstream(path) << case_json.dump();
    std::string out;
    const int rc = test::run_command(test::python() + " " + test::source_path("scripts/torch_sgd_reference.py") + " " + path, &out);
    REQUIRE_MESSAGE(rc == 0, out);
    const nlohmann::json ref = nlohmann::json::parse(out);
    std::vector<float> got = a->value.to_vector<float>(), gotb = b->value.to_vector<float>();
    got.insert(got.end(), gotb.begin(), gotb.end());
    const std::vector<float> want = ref["w"].get<std::vector<float>>();
    CHECK_TENSORS_CLOSE(Tensor::from_vector(got, {22}), Tensor::from_vector(want, {22}), Tolerance{1e-6, 1e-5});
    // The alignment padding between parameters stays zero.
    const std::vector<float> flat = store.flat_values().to_vector<float>();
    for (int64_t i = a->numel(); i < b->offset; ++i) CHECK(flat[size_t(i)] == 0.0f);
  }
}

GPU_TEST_CASE("the CUDA SGD update equals the CPU one") {
  const int64_t n = 100003;
  Tensor w = test::random_tensor({n}, 1), g = test::random_tensor({n}, 2), m = test::random_tensor({n}, 3);
  Tensor wg = w.to(Device::cuda(0)), gg = g.to(Device::cuda(0)), mg = m.to(Device::cuda(0));
  const SgdOptions o{0.9, 1e-4, false};
  for (int i = 0; i < 3; ++i) {
    sgd_update(w.data<float>(), g.data<float>(), m.data<float>(), n, Device::cpu(), 0.01, o);
    sgd_update(wg.data<float>(), gg.data<float>(), mg.data<float>(), n, Device::cuda(0), 0.01, o);
  }
  CHECK_TENSORS_CLOSE(wg, w, Tolerance{1e-6, 1e-6});
  CHECK_TENSORS_CLOSE(mg, m, Tolerance{1e-6, 1e-6});
}
