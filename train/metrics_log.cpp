#include "train/metrics_log.h"

#include <cerrno>
#include <chrono>
#include <cstring>

#include "engine/error.h"

namespace rdd::train {

MetricsLog::MetricsLog(const std::string& path, bool append) : path_(path) {
  f_ = std::fopen(path.c_str(), append ? "a" : "w");
  RDD_CHECK(f_, "cannot open metrics file ", path, " for writing: ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::write(const nlohmann::json& record) {
  RDD_CHECK(f_, "MetricsLog: not open");
  std::string s = record.dump();
  if (!record.contains("time") && s.size() >= 2 && s.back() == '}') {  // wall-clock seconds since the epoch
    char t[48];
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::snprintf(t, sizeof t, "%s\"time\":%.3f}", s.size() > 2 ? "," : "", now);
    s.pop_back();
    s += t;
  }
  RDD_CHECK(std::fprintf(f_, "%s\n", s.c_str()) >= 0 && std::fflush(f_) == 0, "cannot write to metrics file ",
            path_, ": ", std::strerror(errno));
}

}  // namespace rdd::train
