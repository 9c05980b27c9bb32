#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace rdd::train {

namespace {

// ---- protocol buffer wire format: varints, fixed 32/64-bit, length-delimited ----------------------

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}
void put_tag(std::string& out, int field, int wire_type) { put_varint(out, uint64_t(field) << 3 | uint64_t(wire_type)); }
void put_fixed(std::string& out, const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }  // little-endian host
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_double(std::string& out, int field, double v) {
  put_tag(out, field, 1);
  put_fixed(out, &v, 8);
}
void put_float(std::string& out, int field, float v) {
  put_tag(out, field, 5);
  put_fixed(out, &v, 4);
}
void put_int(std::string& out, int field, int64_t v) {
  put_tag(out, field, 0);
  put_varint(out, uint64_t(v));
}

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string event_header(int64_t step) {
  std::string e;
  put_double(e, 1, wall_time());
  put_int(e, 2, step);
  return e;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

}  // namespace

uint32_t crc32c(const uint8_t* p, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const uint8_t* p, size_t n) {
  const uint32_t crc = crc32c(p, n);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  RDD_CHECK(!ec, "tensorboard: cannot create ", dir, " (", ec.message(), ")");
  const long long seconds = (long long)wall_time();
  path_ = dir + "/events.out.tfevents." + std::to_string(seconds) + "." + host_name() + "." + std::to_string(::getpid());
  f_ = std::fopen(path_.c_str(), "ab");
  RDD_CHECK(f_, "tensorboard: cannot create ", path_, ": ", std::strerror(errno));
  std::string e = event_header(0);
  put_bytes(e, 3, "brain.Event:2");
  write_event(e);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (f_) std::fclose(f_);
}

void TensorBoardWriter::write_event(const std::string& event) {
  const uint64_t len = event.size();
  uint8_t len_bytes[8];
  std::memcpy(len_bytes, &len, 8);
  const uint32_t len_crc = masked_crc32c(len_bytes, 8);
  const uint32_t data_crc = masked_crc32c(reinterpret_cast<const uint8_t*>(event.data()), event.size());
  const bool ok = std::fwrite(len_bytes, 1, 8, f_) == 8 && std::fwrite(&len_crc, 1, 4, f_) == 4 &&
                  std::fwrite(event.data(), 1, event.size(), f_) == event.size() &&
                  std::fwrite(&data_crc, 1, 4, f_) == 4 && std::fflush(f_) == 0;
  RDD_CHECK(ok, "tensorboard: cannot write to ", path_, ": ", std::strerror(errno));
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value) {
  std::string v;
  put_bytes(v, 1, tag);
  put_float(v, 2, float(value));
  std::string summary;
  put_bytes(summary, 1, v);
  std::string e = event_header(step);
  put_bytes(e, 5, summary);
  write_event(e);
}

void TensorBoardWriter::image(const std::string& tag, int64_t step, const std::vector<uint8_t>& png, int height,
                              int width, int channels) {
  std::string img;
  put_int(img, 1, height);
  put_int(img, 2, width);
  put_int(img, 3, channels);
  put_bytes(img, 4, std::string(png.begin(), png.end()));
  std::string v;
  put_bytes(v, 1, tag);
  put_bytes(v, 4, img);
  std::string summary;
  put_bytes(summary, 1, v);
  std::string e = event_header(step);
  put_bytes(e, 5, summary);
  write_event(e);
}

void TensorBoardWriter::session_start(int64_t step) {
  std::string log;
  put_int(log, 1, 1);  // SessionLog.START
  std::string e = event_header(step);
  put_bytes(e, 7, log);  // Event.session_log (6 is the deprecated log_message)
  write_event(e);
}

}  // namespace rdd::train
