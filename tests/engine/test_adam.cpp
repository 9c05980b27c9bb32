// Adam (engine/adam.h): PyTorch's update, step by step, and the GPU kernel against the CPU.
#include <cmath>
#include <vector>

#include "engine/adam.h"
#include "harness.h"

using namespace rdd;

TEST_CASE("Adam: three steps equal torch.optim.Adam's formula (bias corrections, order of operations)") {
  ParamStore store;
  Param* w = store.add_parameter("w", {5});
  store.materialize(Device::cpu());
  const std::vector<float> w0 = {0.5f, -1.0f, 2.0f, 0.0f, 3.0f};
  w->value.copy_from(Tensor::from_vector(w0, {5}));
  const AdamOptions o{4e-4, 0.9, 0.99, 1e-8};
  Adam adam(store, o);
  std::vector<double> ww(w0.begin(), w0.end()), m(5, 0), v(5, 0);
  for (int t = 1; t <= 3; ++t) {
    const std::vector<float> g = {0.1f * t, -0.2f, 0.3f, 1e-3f, -5.0f + t};
    w->grad.copy_from(Tensor::from_vector(g, {5}));
    adam.step();
    for (size_t i = 0; i < 5; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.99 * v[i] + 0.01 * double(g[i]) * g[i];
      const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.99, t);
      ww[i] -= (4e-4 / bc1) * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + 1e-8);
    }
  }
  CHECK(adam.steps() == 3);
  const std::vector<float> got = w->value.to_vector<float>();
  for (size_t i = 0; i < 5; ++i) CHECK(got[i] == doctest::Approx(ww[i]).epsilon(1e-6));
}

GPU_TEST_CASE("Adam on the GPU matches the CPU update") {
  const Tensor w = test::random_tensor({1000}, 1), g = test::random_tensor({1000}, 2);
  Tensor m = test::random_tensor({1000}, 3), v = test::random_tensor({1000}, 4, 0.0, 1.0);
  Tensor cw = w.clone(), cm = m.clone(), cv = v.clone();
  Tensor dw = w.to(Device::cuda(0)), dg = g.to(Device::cuda(0)), dm = m.to(Device::cuda(0)), dv = v.to(Device::cuda(0));
  const AdamOptions o{4e-4, 0.9, 0.99, 1e-8};
  adam_update(cw.data<float>(), g.data<float>(), cm.data<float>(), cv.data<float>(), 1000, Device::cpu(), o, 7);
  adam_update(dw.data<float>(), dg.data<float>(), dm.data<float>(), dv.data<float>(), 1000, Device::cuda(0), o, 7);
  CHECK_TENSORS_CLOSE(dw.to(Device::cpu()), cw, Tolerance{1e-7, 1e-6});
  CHECK_TENSORS_CLOSE(dm.to(Device::cpu()), cm, Tolerance{1e-7, 1e-6});
  CHECK_TENSORS_CLOSE(dv.to(Device::cpu()), cv, Tolerance{1e-7, 1e-6});
}
