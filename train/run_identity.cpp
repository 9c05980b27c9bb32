#include "train/run_identity.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>

#include "engine/error.h"
#include "train/checkpoint.h"

namespace rdd::train {

nlohmann::json file_fingerprint(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  RDD_CHECK(f.is_open(), "cannot open ", path, ": ", std::strerror(errno));
  uint64_t h = 14695981039346656037ull, bytes = 0;
  std::vector<char> buf(size_t(1) << 20);
  while (f) {
    f.read(buf.data(), std::streamsize(buf.size()));
    const size_t n = size_t(f.gcount());
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {  // 8 bytes a round: fast enough for a teacher of hundreds of MB
      uint64_t w;
      std::memcpy(&w, buf.data() + i, 8);
      h = (h ^ w) * 1099511628211ull;
      h ^= h >> 29;
    }
    for (; i < n; ++i) h = (h ^ uint8_t(buf[i])) * 1099511628211ull;
    bytes += n;
  }
  RDD_CHECK(f.eof(), "cannot read ", path);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return {{"bytes", bytes}, {"hash", hex}};
}

std::vector<std::string> resume_differences(const nlohmann::json& saved, const nlohmann::json& now,
                                            bool with_data_identity) {
  static const std::pair<const char*, const char*> kPathAndIdentity[] = {
      {"data_root", "train_data"}, {"val_list", "val_data"}, {"teacher_weights", "teacher_weights_file"},
      {"init", "init_file"}};
  std::vector<std::string> ignored;
  for (const auto& [path, identity] : kPathAndIdentity)
    ignored.push_back(saved.contains(identity) ? path : identity);
  if (!with_data_identity) {
    ignored.push_back("train_data");
    ignored.push_back("val_data");
  }
  return config_differences(saved, now, ignored);
}

}  // namespace rdd::train
