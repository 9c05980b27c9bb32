#include "engine/params.h"

#include <cmath>

#include "harness.h"

using namespace rdd;

namespace {

// A store shaped like a tiny conv + batch-norm block: parameter sizes that are and are not multiples
// of the 64-element alignment, and f32 and i64 buffers.
struct Block {
  ParamStore store;
  Param* conv_w;
  Param* bn_w;
  Param* bn_b;
  Param* fc_w;
  Param* running_mean;
  Param* tracked;
  Block() {
    conv_w = store.add_parameter("conv1.weight", {3, 3, 3, 3});  // 81 elements
    running_mean = store.add_buffer("bn1.running_mean", {64});
    bn_w = store.add_parameter("bn1.weight", {64});              // 64
    bn_b = store.add_parameter("bn1.bias", {1});                 // 1
    tracked = store.add_buffer("bn1.num_batches_tracked", {}, DType::i64);
    fc_w = store.add_parameter("fc.weight", {5, 13});            // 65
  }
};

// Offset of `t`'s first element from the start of `base`, in elements of 4 bytes.
int64_t element_offset(const Tensor& t, const Tensor& base) {
  return (static_cast<const char*>(t.raw()) - static_cast<const char*>(base.raw())) / 4;
}

}  // namespace

TEST_CASE("ParamStore registration: entries, parameters, buffers, find and at") {
  Block b;
  ParamStore& s = b.store;
  CHECK_FALSE(s.materialized());
  REQUIRE(s.entries().size() == 6);
  CHECK(s.entries()[0].name == "conv1.weight");
  CHECK(s.entries()[1].name == "bn1.running_mean");
  CHECK(s.entries()[5].name == "fc.weight");

  const std::vector<Param*> params = s.parameters();
  REQUIRE(params.size() == 4);
  CHECK(params[0] == b.conv_w);
  CHECK(params[1] == b.bn_w);
  CHECK(params[2] == b.bn_b);
  CHECK(params[3] == b.fc_w);
  const std::vector<Param*> buffers = s.buffers();
  REQUIRE(buffers.size() == 2);
  CHECK(buffers[0] == b.running_mean);
  CHECK(buffers[1] == b.tracked);

  CHECK(b.conv_w->trainable);
  CHECK(b.conv_w->dtype == DType::f32);
  CHECK(b.conv_w->shape == Shape{3, 3, 3, 3});
  CHECK(b.conv_w->numel() == 81);
  CHECK_FALSE(b.running_mean->trainable);
  CHECK(b.running_mean->offset == -1);
  CHECK(b.tracked->dtype == DType::i64);
  CHECK(b.tracked->numel() == 1);
  CHECK_FALSE(b.conv_w->value.defined());  // not before materialize()

  CHECK(s.find("bn1.bias") == b.bn_b);
  CHECK(s.find("bn1.bias ") == nullptr);
  CHECK(&s.at("fc.weight") == b.fc_w);
  const ParamStore& cs = s;
  CHECK(cs.find("bn1.running_mean") == b.running_mean);
  CHECK_THROWS_WITH_AS(s.at("fc.bias"), doctest::Contains("no parameter or buffer named 'fc.bias'"), Error);

  CHECK(s.parameter_count() == 81 + 64 + 1 + 65);  // buffers excluded, no padding
  CHECK(s.padded_count() == 128 + 64 + 64 + 128);
}

TEST_CASE("ParamStore refuses duplicate names, empty names, empty shapes and non-f32 parameters") {
  ParamStore s;
  s.add_parameter("w", {4});
  CHECK_THROWS_WITH_AS(s.add_parameter("w", {4}), doctest::Contains("'w' registered twice"), Error);
  CHECK_THROWS_WITH_AS(s.add_buffer("w", {4}), doctest::Contains("'w' registered twice"), Error);
  s.add_buffer("m", {2});
  CHECK_THROWS_WITH_AS(s.add_parameter("m", {2}), doctest::Contains("'m' registered twice"), Error);
  CHECK_THROWS_WITH_AS(s.add_parameter("", {2}), doctest::Contains("empty parameter name"), Error);
  CHECK_THROWS_WITH_AS(s.add_parameter("z", {2, 0}), doctest::Contains("'z' has shape [2,0]"), Error);
  CHECK_THROWS_WITH_AS(s.add_buffer("n", {-1}), doctest::Contains("'n' has shape [-1]"), Error);
  CHECK(s.entries().size() == 2);  // the refused ones left no trace
  CHECK(s.find("z") == nullptr);
  CHECK(s.padded_count() == 64);
}

TEST_CASE("ParamStore pointers stay valid while many entries are added") {
  ParamStore s;
  Param* first = s.add_parameter("layer0.weight", {2, 2});
  for (int i = 1; i < 2000; ++i) s.add_parameter("layer" + std::to_string(i) + ".weight", {3});
  CHECK(first->name == "layer0.weight");
  CHECK(s.find("layer0.weight") == first);
  CHECK(s.at("layer1999.weight").offset == 1999 * 64);
  CHECK(s.padded_count() == 2000 * 64);
}

TEST_CASE("materialize: aligned offsets, views into the flat buffers, zeroed values and grads") {
  Block b;
  ParamStore& s = b.store;
  s.materialize(Device::cpu());
  CHECK(s.materialized());
  CHECK(s.device() == Device::cpu());

  // Offsets: each parameter starts at a multiple of 64 elements; sizes 81, 64, 1, 65.
  CHECK(b.conv_w->offset == 0);
  CHECK(b.bn_w->offset == 128);
  CHECK(b.bn_b->offset == 192);
  CHECK(b.fc_w->offset == 256);
  for (Param* p : s.parameters()) CHECK(p->offset % ParamStore::kAlignment == 0);

  const Tensor flat = s.flat_values(), grads = s.flat_grads();
  CHECK(flat.shape() == Shape{384});
  CHECK(grads.shape() == Shape{384});
  CHECK(flat.dtype() == DType::f32);
  CHECK_FALSE(flat.shares_storage(grads));
  for (Param* p : s.parameters()) {
    INFO(p->name);
    CHECK(p->value.shape() == p->shape);
    CHECK(p->grad.shape() == p->shape);
    CHECK(p->value.shares_storage(flat));
    CHECK(p->grad.shares_storage(grads));
    CHECK(element_offset(p->value, flat) == p->offset);
    CHECK(element_offset(p->grad, grads) == p->offset);
    for (float v : p->value.to_vector<float>()) CHECK(v == 0.0f);
  }
  for (float v : grads.to_vector<float>()) CHECK(v == 0.0f);

  // Buffers are separate tensors of their own dtype, zeroed.
  CHECK_FALSE(b.running_mean->value.shares_storage(flat));
  CHECK(b.running_mean->value.shape() == Shape{64});
  CHECK(b.tracked->value.dtype() == DType::i64);
  CHECK(b.tracked->value.shape() == Shape{});
  CHECK(b.tracked->value.to_vector<int64_t>()[0] == 0);
  CHECK_FALSE(b.tracked->grad.defined());

  // Writing through a parameter's value changes the flat buffer at its slice, and only there.
  Tensor w = test::random_tensor({5, 13}, 7);
  b.fc_w->value.copy_from(w);
  b.bn_b->value.data<float>()[0] = 2.5f;
  const std::vector<float> fv = s.flat_values().to_vector<float>();
  for (int64_t i = 0; i < 65; ++i) CHECK(fv[size_t(256 + i)] == w.at<float>(i));
  CHECK(fv[192] == 2.5f);
  for (int64_t i = 193; i < 256; ++i) CHECK(fv[size_t(i)] == 0.0f);  // padding untouched
  for (int64_t i = 256 + 65; i < 384; ++i) CHECK(fv[size_t(i)] == 0.0f);
  // And writing the flat buffer is seen through the view.
  s.flat_values().data<float>()[3] = -4.0f;
  CHECK(b.conv_w->value.at<float>(3) == -4.0f);
}

TEST_CASE("zero_grad clears the flat gradient buffer that the grads view") {
  Block b;
  CHECK_THROWS_WITH_AS(b.store.zero_grad(), doctest::Contains("before materialize"), Error);
  b.store.materialize(Device::cpu());
  b.fc_w->grad.copy_from(test::random_tensor({5, 13}, 8));
  b.conv_w->grad.copy_from(test::random_tensor({3, 3, 3, 3}, 9));
  double sum = 0;
  for (float v : b.store.flat_grads().to_vector<float>()) sum += std::abs(v);
  REQUIRE(sum > 0);
  b.store.zero_grad();
  for (float v : b.store.flat_grads().to_vector<float>()) CHECK(v == 0.0f);
  for (float v : b.fc_w->grad.to_vector<float>()) CHECK(v == 0.0f);
}

TEST_CASE("materialize again on the same device is a no-op; registering afterwards is refused") {
  Block b;
  ParamStore& s = b.store;
  s.materialize(Device::cpu());
  const Tensor w = test::random_tensor({3, 3, 3, 3}, 10);
  b.conv_w->value.copy_from(w);
  b.running_mean->value.copy_from(test::random_tensor({64}, 11));
  b.tracked->value.data<int64_t>()[0] = 42;
  const void* flat_before = s.flat_values().raw();
  const void* conv_before = b.conv_w->value.raw();
  const void* mean_before = b.running_mean->value.raw();
  const std::vector<float> mean_values = b.running_mean->value.to_vector<float>();

  s.materialize(Device::cpu());
  CHECK(s.flat_values().raw() == flat_before);
  CHECK(b.conv_w->value.raw() == conv_before);
  CHECK(b.running_mean->value.raw() == mean_before);
  CHECK(b.conv_w->value.to_vector<float>() == w.to_vector<float>());
  CHECK(b.running_mean->value.to_vector<float>() == mean_values);
  CHECK(b.tracked->value.to_vector<int64_t>()[0] == 42);

  CHECK_THROWS_WITH_AS(s.add_parameter("late.weight", {2}),
                       doctest::Contains("'late.weight' registered after materialize()"), Error);
  CHECK_THROWS_WITH_AS(s.add_buffer("late.buffer", {2}), doctest::Contains("registered after materialize()"), Error);
  CHECK(s.entries().size() == 6);
}

TEST_CASE("materialize without gradients (forward-only models): no grad buffer; adding one later keeps the values") {
  Block b;
  ParamStore& s = b.store;
  s.materialize(Device::cpu(), /*with_grads=*/false);
  CHECK_FALSE(s.flat_grads().defined());
  CHECK_FALSE(b.conv_w->grad.defined());
  CHECK(b.conv_w->value.defined());
  CHECK_THROWS_WITH_AS(s.zero_grad(), doctest::Contains("no gradients"), Error);
  const Tensor w = test::random_tensor({3, 3, 3, 3}, 12);
  b.conv_w->value.copy_from(w);
  s.materialize(Device::cpu());  // now with gradients, zeroed; values kept
  REQUIRE(b.conv_w->grad.defined());
  CHECK(b.conv_w->value.to_vector<float>() == w.to_vector<float>());
  for (float g : s.flat_grads().to_vector<float>()) CHECK(g == 0.0f);
}

TEST_CASE("state_dict: every parameter and buffer by name, as views") {
  Block b;
  CHECK_THROWS_WITH_AS(b.store.state_dict(), doctest::Contains("before materialize"), Error);
  b.store.materialize(Device::cpu());
  b.bn_w->value.copy_from(test::random_tensor({64}, 12));
  b.tracked->value.data<int64_t>()[0] = (int64_t(1) << 40) + 3;  // needs all 64 bits

  const std::map<std::string, Tensor> sd = b.store.state_dict();
  std::vector<std::string> keys;
  for (const auto& [k, v] : sd) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"bn1.bias", "bn1.num_batches_tracked", "bn1.running_mean", "bn1.weight",
                                         "conv1.weight", "fc.weight"});
  for (const Param& p : b.store.entries()) {
    INFO(p.name);
    const Tensor& t = sd.at(p.name);
    CHECK(t.shape() == p.shape);
    CHECK(t.dtype() == p.dtype);
    CHECK(t.raw() == p.value.raw());
  }
  CHECK(sd.at("bn1.weight").to_vector<float>() == b.bn_w->value.to_vector<float>());
  CHECK(sd.at("bn1.num_batches_tracked").dtype() == DType::i64);
  CHECK(sd.at("bn1.num_batches_tracked").to_vector<int64_t>()[0] == (int64_t(1) << 40) + 3);
  // Views: writing through the state dict changes the parameters (how a checkpoint is loaded).
  sd.at("fc.weight").data<float>()[64] = 9.0f;
  CHECK(b.fc_w->value.at<float>(64) == 9.0f);
  CHECK(b.store.flat_values().at<float>(256 + 64) == 9.0f);
  sd.at("bn1.num_batches_tracked").data<int64_t>()[0] = 5;
  CHECK(b.tracked->value.to_vector<int64_t>()[0] == 5);
}

TEST_CASE("an empty store materializes to empty flat buffers") {
  ParamStore s;
  s.materialize(Device::cpu());
  CHECK(s.materialized());
  CHECK(s.flat_values().numel() == 0);
  CHECK(s.parameter_count() == 0);
  CHECK(s.state_dict().empty());
}

GPU_TEST_CASE("ParamStore: materialize on the CPU, set values, move to cuda:0 and back, values preserved") {
  Block b;
  ParamStore& s = b.store;
  s.materialize(Device::cpu());
  std::map<std::string, std::vector<double>> want;
  uint64_t seed = 100;
  for (Param* p : s.parameters()) p->value.copy_from(test::random_tensor(p->shape, ++seed));
  b.running_mean->value.copy_from(test::random_tensor({64}, ++seed));
  b.tracked->value.data<int64_t>()[0] = (int64_t(1) << 40) + 7;
  for (const Param& p : s.entries()) want[p.name] = p.value.to_vector<double>();
  b.fc_w->grad.fill_(1.0);  // gradients are not carried across devices

  s.materialize(Device::cuda(0));
  CHECK(s.device() == Device::cuda(0));
  CHECK(s.flat_values().device() == Device::cuda(0));
  CHECK(s.flat_grads().device() == Device::cuda(0));
  for (const Param& p : s.entries()) {
    INFO(p.name);
    CHECK(p.value.device() == Device::cuda(0));
    CHECK(p.value.dtype() == p.dtype);
    CHECK(p.value.to_vector<double>() == want[p.name]);
    if (p.trainable) {
      CHECK(p.value.shares_storage(s.flat_values()));
      CHECK(p.grad.shares_storage(s.flat_grads()));
      CHECK(reinterpret_cast<uintptr_t>(p.value.raw()) % 256 == 0);  // 64 f32 elements
    }
  }
  CHECK(b.tracked->value.to_vector<int64_t>()[0] == (int64_t(1) << 40) + 7);
  for (float v : s.flat_grads().to_vector<float>()) CHECK(v == 0.0f);
  // Padding stays zero on the device too.
  const std::vector<float> fv = s.flat_values().to_vector<float>();
  for (int64_t i = 81; i < 128; ++i) CHECK(fv[size_t(i)] == 0.0f);

  // A write on the GPU through the flat buffer is seen by the parameter, and the way back keeps it.
  Tensor patch = s.flat_values().slice(256, 257);
  patch.fill_(3.5);
  CHECK(b.fc_w->value.to_vector<float>()[0] == 3.5f);
  s.materialize(Device::cpu());
  CHECK(s.device() == Device::cpu());
  CHECK(b.fc_w->value.at<float>(0) == 3.5f);
  CHECK(b.conv_w->value.to_vector<double>() == want["conv1.weight"]);
  CHECK(b.tracked->value.to_vector<int64_t>()[0] == (int64_t(1) << 40) + 7);
}
