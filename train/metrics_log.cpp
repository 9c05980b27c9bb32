#include "train/metrics_log.h"

#include <cerrno>
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
  const std::string s = record.dump();
  RDD_CHECK(std::fprintf(f_, "%s\n", s.c_str()) >= 0 && std::fflush(f_) == 0, "cannot write to metrics file ",
            path_, ": ", std::strerror(errno));
}

}  // namespace rdd::train
