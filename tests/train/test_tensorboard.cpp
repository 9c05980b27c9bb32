#include "train/tensorboard.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "harness.h"

using namespace rdd;
using namespace rdd::train;
namespace fs = std::filesystem;

namespace {

// The TFRecord frames of a file: each record's payload, with both CRCs checked.
std::vector<std::string> read_records(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    REQUIRE(at + 12 <= bytes.size());
    uint64_t len = 0;
    uint32_t len_crc = 0, data_crc = 0;
    std::memcpy(&len, bytes.data() + at, 8);
    std::memcpy(&len_crc, bytes.data() + at + 8, 4);
    CHECK(len_crc == masked_crc32c(reinterpret_cast<const uint8_t*>(bytes.data() + at), 8));
    REQUIRE(at + 12 + len + 4 <= bytes.size());
    const std::string payload = bytes.substr(at + 12, len);
    std::memcpy(&data_crc, bytes.data() + at + 12 + len, 4);
    CHECK(data_crc == masked_crc32c(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
    records.push_back(payload);
    at += 12 + len + 4;
  }
  return records;
}

}  // namespace

TEST_CASE("crc32c: the Castagnoli check value, and TFRecord's mask") {
  const char* s = "123456789";
  CHECK(crc32c(reinterpret_cast<const uint8_t*>(s), 9) == 0xE3069283u);
  const uint32_t crc = 0xE3069283u;
  CHECK(masked_crc32c(reinterpret_cast<const uint8_t*>(s), 9) == ((crc >> 15) | (crc << 17)) + 0xA282EAD8u);
  CHECK(crc32c(nullptr, 0) == 0);
}

TEST_CASE("TensorBoard event file: framed records, a version record first, tags and values in place") {
  const std::string dir = test::temp_dir("tb") + "/tb";
  std::string path;
  {
    TensorBoardWriter tb(dir);
    path = tb.path();
    tb.scalar("loss/total", 7, 0.5);
    tb.session_start(8);
    tb.image("val/panel", 9, {1, 2, 3}, 2, 3, 3);
  }
  CHECK(fs::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
  const std::vector<std::string> r = read_records(path);
  REQUIRE(r.size() == 4);
  CHECK(r[0].find("brain.Event:2") != std::string::npos);
  CHECK(r[1].find("loss/total") != std::string::npos);
  const float half = 0.5f;
  CHECK(r[1].find(std::string(reinterpret_cast<const char*>(&half), 4)) != std::string::npos);
  CHECK(r[1][9] == 0x10);  // after wall_time (tag 0x09 + 8 bytes): step, field 2 varint
  CHECK(r[1][10] == 7);
  CHECK(r[2][10] == 8);
  CHECK(r[2][11] == 0x3A);  // Event.session_log: field 7, length-delimited (field 6 is the old log_message)
  CHECK(r[3].find("val/panel") != std::string::npos);
  // The TensorBoard reader itself loads such files in tests/apps/e2e_trust.sh (section tensorboard).
  CHECK(test::error_message([&] { TensorBoardWriter bad(path + "/inside_a_file"); }).find("tensorboard") !=
        std::string::npos);
}
