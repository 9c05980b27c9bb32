// Small on-disk fixtures for the data tests: images and label maps in each dataset's real layout.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/image.h"
#include "engine/philox.h"

namespace rdd::test {

// A textured RGB image (never constant): a gradient plus Philox noise.
inline data::Image make_rgb(int h, int w, uint64_t seed) {
  data::Image im;
  im.height = h;
  im.width = w;
  im.channels = 3;
  im.pixels.resize(size_t(h) * size_t(w) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const size_t i = (size_t(y) * size_t(w) + size_t(x)) * 3 + size_t(c);
        const uint32_t r = philox::u32(seed, 0xf1, i) % 40;
        im.pixels[i] = uint8_t((x * 7 + y * 3 + c * 50 + int(r)) % 256);
      }
  return im;
}

// A 1-channel image whose pixel (x, y) is values[(x / block + y / block) % values.size()].
inline data::Image make_blocks(int h, int w, const std::vector<uint8_t>& values, int block = 4) {
  data::Image im;
  im.height = h;
  im.width = w;
  im.channels = 1;
  im.pixels.resize(size_t(h) * size_t(w));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) im.pixels[size_t(y) * size_t(w) + size_t(x)] = values[size_t(x / block + y / block) % values.size()];
  return im;
}

inline std::string mkdirs(const std::filesystem::path& p) {
  std::filesystem::create_directories(p);
  return p.string();
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::vector<uint8_t> b(text.begin(), text.end());
  data::write_file_bytes(p.string(), b);
}

}  // namespace rdd::test
