// metrics.jsonl: one JSON object per line (an iteration's loss terms, a validation), flushed as written,
// each with "time": the wall-clock time it was written (seconds since 1970, UTC), read by
// scripts/plot_metrics.py.
//
//   MetricsLog log(out_dir + "/metrics.jsonl");
//   log.write({{"iter", it}, {"loss", 1.23}});
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace rdd::train {

class MetricsLog {
 public:
  MetricsLog() = default;
  explicit MetricsLog(const std::string& path, bool append = false);  // throws naming the path
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  MetricsLog(MetricsLog&& o) noexcept : f_(o.f_), path_(std::move(o.path_)) { o.f_ = nullptr; }
  MetricsLog& operator=(MetricsLog&& o) noexcept {
    std::swap(f_, o.f_);
    std::swap(path_, o.path_);
    return *this;
  }
  void write(const nlohmann::json& record);  // one line, flushed

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace rdd::train
