#include "train/progress.h"

#include <cmath>
#include <unistd.h>


namespace rdd::train {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = int64_t(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%llds", (long long)t);
  return buf;
}

Progress::Progress(int64_t total, int64_t start, std::string label, int64_t print_every)
    : total_(total), start_(start), print_every_(std::max<int64_t>(print_every, 1)), label_(std::move(label)),
      tty_(isatty(STDERR_FILENO) != 0) {
  last_step_ = last_print_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t it, const std::map<std::string, double>& terms, double lr, int64_t images) {
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - last_step_).count();
  last_step_ = now;
  if (dt > 0) {
    // Smooth over ~20 steps, but take the first measurement as is.
    const double a = (rate_ == 0) ? 1.0 : 0.05;
    rate_ = (1 - a) * rate_ + a * double(images) / dt;
    step_rate_ = (1 - a) * step_rate_ + a * 1.0 / dt;
  }
  const bool last = it >= total_;
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  if (tty_ ? (since_print < 0.25 && !last) : (it % print_every_ != 0 && !last && it != start_ + 1)) return;
  last_print_ = now;
  const double eta = step_rate_ > 0 ? double(total_ - it) / step_rate_ : NAN;
  std::string line;
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s %lld/%lld", label_.c_str(), (long long)it, (long long)total_);
  line += buf;
  for (const auto& [k, v] : terms) {
    std::snprintf(buf, sizeof buf, "  %s %.4f", k.c_str(), v);
    line += buf;
  }
  std::snprintf(buf, sizeof buf, "  lr %.3g  %.1f img/s  ETA %s", lr, rate_, format_duration(eta).c_str());
  line += buf;
  if (tty_) {
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
    live_line_open_ = true;
    if (last) finish();
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

void Progress::message(const std::string& line) {
  if (live_line_open_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", line.c_str());
  live_line_open_ = false;
  std::fflush(stderr);
}

void Progress::finish() {
  if (live_line_open_) std::fprintf(stderr, "\n");
  live_line_open_ = false;
  std::fflush(stderr);
}

}  // namespace rdd::train
