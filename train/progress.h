// Progress for long work: a live line on the terminal (iteration, loss terms, lr, img/s, ETA). The
// records behind it go to metrics.jsonl (metrics_log.h).
//
//   Progress progress(max_iters, start_iter, "distill");
//   progress.update(it, {{"loss", 1.23}, {"kd", 0.4}}, lr, images_this_step);
//
// On a terminal the line is rewritten in place (at most ~4 times a second); otherwise (CI, a log file)
// one line is printed every `print_every` iterations, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace rdd::train {

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

}  // namespace rdd::train
