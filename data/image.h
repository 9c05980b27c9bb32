// Image I/O: decoding PNG/JPEG images and 8-bit label maps, writing PNGs.
//
//   Image rgb = read_image("a/b_leftImg8bit.png");          // 3 channels, RGB, u8, row-major HWC
//   LabelImage ids = read_label_png("a/b_labelIds.png");    // 1 channel: grey values or palette indices
//   write_png_rgb("pred.png", colorize(pred_ids, palette));
//
// Every failure (missing file, truncated or corrupt data, a text file, unsupported PNG flavour)
// throws rdd::Error with a message naming the file and the problem; nothing crashes on bad input.
// Images are decoded with stb_image. Label PNGs are read by our own chunk reader (inflate by
// stb_image's zlib decoder) so that palette PNGs (Pascal VOC SegmentationClass) give the palette
// *indices*, not the colours stb_image would expand them to.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace rdd::data {

// An 8-bit image, row-major, channels interleaved (HWC).
struct Image {
  int height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // height·width·channels
  uint8_t* row(int y) { return pixels.data() + size_t(y) * size_t(width) * size_t(channels); }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * size_t(width) * size_t(channels); }
  size_t bytes() const { return pixels.size(); }
};
using LabelImage = Image;  // channels == 1

using Palette = std::vector<std::array<uint8_t, 3>>;  // RGB per class

// Reads a whole file; throws naming the file when it is missing or unreadable.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// PNG or JPEG (anything stb_image decodes) → RGB, 3 channels. `name` is used in error messages.
Image decode_image(const uint8_t* data, size_t size, const std::string& name);
Image read_image(const std::string& path);

// What an image file's header says, read without decoding the pixels.
struct ImageHeader {
  std::string format;  // "PNG" or "JPEG"
  int height = 0, width = 0;
  int channels = 0;    // as stored (PNG: 1 grey, 2 grey+alpha, 3 RGB or palette, 4 RGBA; JPEG: components)
};
// The largest image rdd decodes: 32768 pixels a side and 2^26 pixels in all (a corrupt header must not
// make it allocate gigabytes).
constexpr int64_t kMaxImageSide = int64_t(1) << 15;
constexpr int64_t kMaxImagePixels = int64_t(1) << 26;
// Bytes from the start of a file that hold the header of any ordinary PNG/JPEG (a JPEG's frame header
// may follow EXIF data); parse_image_header asks for the whole file when it is not there.
constexpr size_t kImageHeadBytes = size_t(256) << 10;
// PNG IHDR or JPEG SOF from the file's first bytes, with the size checked against the limits above:
// throws naming `name` for anything that is not a PNG/JPEG header, or an image too large (with its size).
// `*incomplete` (optional) is set instead of throwing when a JPEG's frame header lies past `size` bytes.
ImageHeader parse_image_header(const uint8_t* data, size_t size, const std::string& name, bool* incomplete = nullptr);
// The file ends as its format requires (PNG: an IEND chunk; JPEG: an end-of-image marker) within its
// last `size` bytes (`tail`); throws "truncated ..." naming `name` otherwise.
void check_image_end(const ImageHeader& header, const uint8_t* tail, size_t size, const std::string& name);
// Reads only the head and the tail of the file: header, limits and end checked, no pixels decoded.
ImageHeader read_image_header(const std::string& path);

// 8-bit label PNG: grey (colour type 0) gives the grey values; palette (colour type 3, bit depth 1/2/4/8)
// gives the palette indices. 16-bit, RGB and interlaced label PNGs are refused with a message.
// `palette_out` (optional) receives the file's palette (empty for grey PNGs).
LabelImage decode_label_png(const uint8_t* data, size_t size, const std::string& name, Palette* palette_out = nullptr);
LabelImage read_label_png(const std::string& path, Palette* palette_out = nullptr);

// Writing (8-bit): grey (1 channel) or RGB (3 channels) PNGs; with a palette, a 1-channel image is
// written as a palette PNG of indices (the Pascal VOC SegmentationClass flavour). `compression` 1..9
// (stb's zlib level) or 0 (stored, no compression: fastest). Files are written to a temporary name and
// renamed (never half-written).
std::vector<uint8_t> encode_png(const Image& image, int compression = 6, const Palette* palette = nullptr);
void write_png(const std::string& path, const Image& image, int compression = 6, const Palette* palette = nullptr);
// Baseline JPEG of an RGB image (stb_image_write), quality 1..100.
std::vector<uint8_t> encode_jpeg(const Image& image, int quality = 90);
void write_jpeg(const std::string& path, const Image& image, int quality = 90);
// Writes bytes to a file (temporary name + rename).
void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

// Class ids → RGB with a palette; ids outside [0, palette size) (ignore) become `ignore_colour`.
// ids: (H, W) int32 row-major.
Image colorize(const int32_t* ids, int height, int width, const Palette& palette,
               std::array<uint8_t, 3> ignore_colour = {0, 0, 0});

}  // namespace rdd::data
