// Progress for long work: a live line on the terminal (iteration, loss terms, lr, img/s, ETA) and a
// JSON-lines metrics file that plotting scripts read.
//
//   Progress progress(max_iters, start_iter, "distill");
//   progress.update(it, {{"loss", 1.23}, {"kd", 0.4}}, lr, images_this_step);
//   MetricsLog log(out_dir + "/metrics.jsonl");
//   log.write({{"iter", it}, {"loss", 1.23}});
//
// On a terminal the line is rewritten in place (at most ~4 times a second); otherwise (CI, a log file)
// one line is printed every `print_every` iterations, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace rdd::apps {

std::string format_duration(double seconds);  // "1h02m03s", "4m05s", "12s"

class Progress {
 public:
  Progress(int64_t total, int64_t start, std::string label, int64_t print_every = 10);
  // `images` processed in this step (for img/s, smoothed over recent steps).
  void update(int64_t iteration, const std::map<std::string, double>& terms, double lr, int64_t images);
  void message(const std::string& line);  // a full line that does not disturb the live line
  void finish();
  double images_per_second() const { return rate_; }

 private:
  int64_t total_, start_, print_every_;
  std::string label_;
  bool tty_;
  std::chrono::steady_clock::time_point last_step_, last_print_;
  double rate_ = 0;  // exponentially smoothed img/s
  double step_rate_ = 0;  // iterations/s, smoothed
  bool live_line_open_ = false;
};

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

}  // namespace rdd::apps
