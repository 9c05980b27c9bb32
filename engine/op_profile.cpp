#include "engine/op_profile.h"

#include <atomic>
#include <chrono>
#include <mutex>

#include "engine/tensor.h"

namespace rdd {

namespace {

std::atomic<bool> g_enabled{false};
std::atomic<OpLevel> g_level{OpLevel::kind};
thread_local int t_depth = 0;               // open scopes on this thread
thread_local const char* t_prefix = nullptr;  // OpLabelPrefix

struct Table {
  std::mutex mutex;
  std::vector<OpStats> rows;  // first-seen order; a handful of names, so a linear search is fine
};
Table& table() {
  static Table t;
  return t;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void op_profile_enable(bool on, OpLevel level) {
  g_level.store(level, std::memory_order_relaxed);
  g_enabled.store(on, std::memory_order_relaxed);
}
bool op_profile_enabled() { return g_enabled.load(std::memory_order_relaxed); }

std::vector<OpStats> op_profile_take() {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  std::vector<OpStats> out;
  out.swap(t.rows);
  return out;
}

OpLabelPrefix::OpLabelPrefix(const char* prefix) : previous_(t_prefix) { t_prefix = prefix; }
OpLabelPrefix::~OpLabelPrefix() { t_prefix = previous_; }

OpScope::OpScope(const char* name, Device device, double flops, double bytes, OpLevel level) : device_(device) {
  if (!op_profile_enabled() || level != g_level.load(std::memory_order_relaxed)) return;
  counted_ = true;
  if (t_depth++ > 0) return;  // nested: the enclosing op is timed
  name_ = name;
  flops_ = flops;
  bytes_ = bytes;
  synchronize(device_);  // the work queued before this op is not its time
  start_ns_ = now_ns();
}

OpScope::~OpScope() {
  if (counted_) --t_depth;
  if (!name_) return;
  try {
    synchronize(device_);
  } catch (...) {
    return;  // a device error: the next call on the device reports it; a destructor must not throw
  }
  const double ms = double(now_ns() - start_ns_) * 1e-6;
  const std::string name = t_prefix ? std::string(t_prefix) + name_ : std::string(name_);
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  for (OpStats& row : t.rows)
    if (row.name == name) {
      ++row.calls;
      row.ms += ms;
      row.flops += flops_;
      row.bytes += bytes_;
      return;
    }
  t.rows.push_back({name, 1, ms, flops_, bytes_});
}

}  // namespace rdd
