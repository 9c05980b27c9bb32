#include "engine/op_profile.h"

#include <chrono>
#include <thread>

#include "harness.h"

using namespace rdd;

namespace {
// Profiling is process-wide: every case leaves it off and the table empty.
struct ProfileOn {
  ProfileOn() {
    op_profile_take();
    op_profile_enable(true);
  }
  ~ProfileOn() {
    op_profile_enable(false);
    op_profile_take();
  }
};
}  // namespace

TEST_CASE("op profile: off by default, scopes record nothing") {
  op_profile_take();
  CHECK_FALSE(op_profile_enabled());
  { OpScope s("ignored", Device::cpu(), 10, 20); }
  CHECK(op_profile_take().empty());
}

TEST_CASE("op profile: calls, time, FLOPs and bytes summed per name, in first-seen order; take clears") {
  ProfileOn on;
  for (int i = 0; i < 3; ++i) {
    OpScope s("b op", Device::cpu(), 100, 8);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  { OpScope s("a op", Device::cpu(), 0, 4); }
  { OpScope s("b op", Device::cpu(), 50, 0); }
  const std::vector<OpStats> t = op_profile_take();
  REQUIRE(t.size() == 2);
  CHECK(t[0].name == "b op");
  CHECK(t[0].calls == 4);
  CHECK(t[0].flops == 350);
  CHECK(t[0].bytes == 24);
  CHECK(t[0].ms >= 6.0);  // three sleeps of 2 ms
  CHECK(t[1].name == "a op");
  CHECK(t[1].calls == 1);
  CHECK(t[1].bytes == 4);
  CHECK(op_profile_take().empty());
}

TEST_CASE("op profile: a nested scope is part of its enclosing op, not a row of its own") {
  ProfileOn on;
  {
    OpScope outer("outer", Device::cpu(), 1, 0);
    OpScope inner("inner", Device::cpu(), 1000, 0);
  }
  { OpScope after("after", Device::cpu()); }  // the depth count is back to 0
  const std::vector<OpStats> t = op_profile_take();
  REQUIRE(t.size() == 2);
  CHECK(t[0].name == "outer");
  CHECK(t[0].flops == 1);
  CHECK(t[1].name == "after");
}

TEST_CASE("op profile: turning it on inside an open scope does not unbalance the nesting") {
  op_profile_take();
  {
    OpScope opened_while_off("off", Device::cpu());
    op_profile_enable(true);
  }
  { OpScope s("counted", Device::cpu()); }
  op_profile_enable(false);
  const std::vector<OpStats> t = op_profile_take();
  REQUIRE(t.size() == 1);
  CHECK(t[0].name == "counted");
}

TEST_CASE("op profile: a label prefix keeps two models' same-named rows apart, and is undone with its scope") {
  ProfileOn on;
  { OpScope s("layer1.conv forward", Device::cpu()); }
  {
    OpLabelPrefix teacher("teacher: ");
    OpScope s("layer1.conv forward", Device::cpu());
  }
  { OpScope s("layer1.conv forward", Device::cpu()); }
  const std::vector<OpStats> t = op_profile_take();
  REQUIRE(t.size() == 2);
  CHECK(t[0].name == "layer1.conv forward");
  CHECK(t[0].calls == 2);
  CHECK(t[1].name == "teacher: layer1.conv forward");
  CHECK(t[1].calls == 1);
}
