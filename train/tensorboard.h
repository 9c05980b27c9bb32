// TensorBoard event files, written by hand: the TFRecord framing (length, masked CRC-32C of the length,
// the record, masked CRC-32C of the record) around Event protocol buffers, encoded field by field from
// TensorFlow's event.proto / summary.proto — the few fields rdd writes (no protobuf library, no
// vendored code):
//
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//             SessionLog session_log = 7 }
//   Summary { repeated Value value = 1 }
//   Value   { string tag = 1; float simple_value = 2; Image image = 4 }
//   Image   { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4 }
//   SessionLog { SessionStatus status = 1 }   START = 1: TensorBoard drops what the earlier file logged
//                                             at or after this step (a resumed run repeats those steps)
//
//   TensorBoardWriter tb(out + "/tb");       // events.out.tfevents.<time>.<host>.<pid>
//   tb.scalar("loss/total", it, 0.73);
//   tb.image("val/prediction_0", it, png_bytes, h, w, 3);
//
// Every record is flushed as written: a run killed at any moment leaves a file TensorBoard reads.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace rdd::train {

// CRC-32C (Castagnoli), and the masked form TFRecord stores.
uint32_t crc32c(const uint8_t* data, size_t size);
uint32_t masked_crc32c(const uint8_t* data, size_t size);

class TensorBoardWriter {
 public:
  // Creates `dir` and a new event file in it (its first record: file_version "brain.Event:2"). Throws
  // naming the folder when it cannot.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void scalar(const std::string& tag, int64_t step, double value);
  // An encoded PNG of height × width with `channels` (1 grey, 3 RGB, 4 RGBA).
  void image(const std::string& tag, int64_t step, const std::vector<uint8_t>& png, int height, int width, int channels);
  // A session restarting at `step` (a resume): TensorBoard discards the earlier records from `step` on.
  void session_start(int64_t step);
  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& event);
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace rdd::train
