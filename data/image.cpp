#include "data/image.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>

#include "engine/error.h"

// stb_image / stb_image_write: Debian's libstb-dev (a system package, not vendored). Their
// implementations live in this one translation unit.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS (1 << 15)
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace rdd::data {

namespace {

constexpr int64_t kMaxSide = kMaxImageSide;
constexpr int64_t kMaxPixels = kMaxImagePixels;

uint32_t crc_table_entry(uint32_t n) {
  uint32_t c = n;
  for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  return c;
}

// CRC-32 as PNG uses it (ISO 3309 / ITU-T V.42 polynomial, reflected).
uint32_t crc32_png(const uint8_t* p, size_t n, uint32_t crc = 0xFFFFFFFFu) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) t[i] = crc_table_entry(i);
    return t;
  }();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(uint8_t(v >> 24));
  out.push_back(uint8_t(v >> 16));
  out.push_back(uint8_t(v >> 8));
  out.push_back(uint8_t(v));
}

const uint8_t kPngSignature[8] = {137, 80, 78, 71, 13, 10, 26, 10};

uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return uint8_t(a);
  if (pb <= pc) return uint8_t(b);
  return uint8_t(c);
}

// A zlib stream of stored (uncompressed) deflate blocks: fast to write and to inflate, for images
// whose noise leaves little to compress (synthetic scenes).
std::vector<uint8_t> zlib_stored(const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  out.reserve(data.size() + data.size() / 65535 * 5 + 16);
  out.push_back(0x78);
  out.push_back(0x01);
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, data.size() - pos);
    out.push_back(pos + n == data.size() ? 1 : 0);  // BFINAL, BTYPE 00
    out.push_back(uint8_t(n));
    out.push_back(uint8_t(n >> 8));
    out.push_back(uint8_t(~n));
    out.push_back(uint8_t((~n) >> 8));
    out.insert(out.end(), data.begin() + long(pos), data.begin() + long(pos + n));
    pos += n;
  } while (pos < data.size());
  uint32_t a = 1, b = 0;  // Adler-32
  for (size_t i = 0; i < data.size();) {
    const size_t end = std::min(data.size(), i + 5552);
    for (; i < end; ++i) {
      a += data[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  put_be32(out, (b << 16) | a);
  return out;
}

// stb_image 2.27 (Debian 12's) does not check that a JPEG Huffman table holds at most 256 codes and
// then writes past its tables (fixed upstream in 2.28). Walk the JPEG's markers the way stb_image
// reads them (junk between segments skipped, bytes past the end read as 0, DHT tables parsed while
// the declared length lasts) and refuse such tables first; anything else malformed is left to
// stb_image, which refuses it.
void check_jpeg_huffman_tables(const uint8_t* d, size_t n, const std::string& name) {
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return;  // not a JPEG
  auto byte = [&](size_t i) -> size_t { return i < n ? d[i] : 0; };
  auto is_rst = [](uint8_t m) { return m >= 0xD0 && m <= 0xD7; };
  size_t pos = 2;
  while (pos < n) {
    if (d[pos] != 0xFF) {  // junk: stb_image looks for the next 0xFF
      ++pos;
      continue;
    }
    while (pos < n && d[pos] == 0xFF) ++pos;
    if (pos >= n) return;
    const uint8_t marker = d[pos++];
    if (marker == 0xD9) return;  // EOI
    if (marker == 0x00 || marker == 0x01 || marker == 0xD8 || is_rst(marker)) continue;  // no length
    const size_t len = (byte(pos) << 8) | byte(pos + 1);
    if (marker == 0xC4) {  // DHT: tables of (class/id, 16 counts, symbols) while the length lasts
      long remaining = long(len) - 2;
      size_t t = pos + 2;
      while (remaining > 0) {
        const size_t q = byte(t);
        if ((q >> 4) > 1 || (q & 15) > 3) break;  // stb_image refuses this table
        size_t codes = 0;
        for (size_t i = 0; i < 16; ++i) codes += byte(t + 1 + i);
        RDD_CHECK(codes <= 256, name, ": corrupt JPEG (a Huffman table declares ", codes, " codes, at most 256)");
        t += 17 + codes;
        remaining -= long(17 + codes);
      }
    }
    pos += std::max<size_t>(len, 2);
    if (marker == 0xDA) {  // SOS: skip the entropy-coded data up to the next marker (FF xx, xx not 00)
      while (pos + 1 < n && !(d[pos] == 0xFF && d[pos + 1] != 0x00 && d[pos + 1] != 0xFF && !is_rst(d[pos + 1]))) ++pos;
    }
  }
}

bool is_jpeg_sof(uint8_t m) {
  return (m >= 0xC0 && m <= 0xC3) || (m >= 0xC5 && m <= 0xC7) || (m >= 0xC9 && m <= 0xCB) || (m >= 0xCD && m <= 0xCF);
}

std::string size_text(int64_t w, int64_t h) {
  return std::to_string(h) + "x" + std::to_string(w) + " (HxW)";
}

void check_image_size(int64_t w, int64_t h, const std::string& name) {
  RDD_CHECK(w > 0 && h > 0, name, ": image size ", size_text(w, h), " in its header is empty");
  RDD_CHECK(w <= kMaxSide && h <= kMaxSide && w * h <= kMaxPixels, name, ": image size ", size_text(w, h), " (",
            (w * h + 500000) / 1000000, " Mpixels) is larger than rdd decodes (at most ", kMaxSide, " a side and ",
            kMaxPixels / 1000000, " Mpixels); resize it");
}

}  // namespace

ImageHeader parse_image_header(const uint8_t* d, size_t n, const std::string& name, bool* incomplete) {
  if (incomplete) *incomplete = false;
  RDD_CHECK(n > 0, name, ": empty file, not an image");
  ImageHeader h;
  if (n >= 8 && std::memcmp(d, kPngSignature, 8) == 0) {
    RDD_CHECK(n >= 8 + 8 + 13 && std::memcmp(d + 12, "IHDR", 4) == 0 && be32(d + 8) == 13, name,
              ": corrupt PNG (no IHDR header chunk)");
    h.format = "PNG";
    const uint32_t w = be32(d + 16), ht = be32(d + 20);
    const int colour_type = d[25];
    h.channels = colour_type == 0 ? 1 : colour_type == 2 ? 3 : colour_type == 3 ? 3 : colour_type == 4 ? 2 : colour_type == 6 ? 4 : 0;
    RDD_CHECK(h.channels > 0, name, ": corrupt PNG (colour type ", colour_type, ")");
    check_image_size(int64_t(w), int64_t(ht), name);
    h.width = int(w);
    h.height = int(ht);
    return h;
  }
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
    h.format = "JPEG";
    size_t pos = 2;
    while (pos + 4 <= n) {
      if (d[pos] != 0xFF) {  // junk between segments: skipped, as stb_image does
        ++pos;
        continue;
      }
      while (pos < n && d[pos] == 0xFF) ++pos;
      if (pos + 3 > n) break;
      const uint8_t marker = d[pos++];
      if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
      RDD_CHECK(marker != 0xD9 && marker != 0xDA, name, ": corrupt JPEG (no frame header before ",
                marker == 0xD9 ? "its end" : "its image data", ")");
      const size_t len = (size_t(d[pos]) << 8) | d[pos + 1];
      RDD_CHECK(len >= 2, name, ": corrupt JPEG (a segment of length ", len, ")");
      if (is_jpeg_sof(marker)) {
        if (pos + 8 > n) break;
        const int64_t ht = (int64_t(d[pos + 3]) << 8) | d[pos + 4], w = (int64_t(d[pos + 5]) << 8) | d[pos + 6];
        h.channels = d[pos + 7];
        RDD_CHECK(h.channels == 1 || h.channels == 3 || h.channels == 4, name, ": JPEG with ", h.channels,
                  " components (1, 3 or 4 are decoded)");
        check_image_size(w, ht, name);
        h.width = int(w);
        h.height = int(ht);
        return h;
      }
      pos += len;
    }
    if (incomplete) {
      *incomplete = true;
      return h;
    }
    fail(name, ": truncated or corrupt JPEG (no frame header in its ", n, " bytes)");
  }
  fail(name, ": not a decodable PNG/JPEG image (unknown image type: neither the PNG nor the JPEG signature)");
}

void check_image_end(const ImageHeader& h, const uint8_t* tail, size_t n, const std::string& name) {
  static const uint8_t iend[8] = {'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
  if (h.format == "PNG") {
    for (size_t i = n >= 8 ? n - 8 + 1 : 0; i-- > 0;)
      if (std::memcmp(tail + i, iend, 8) == 0) return;
    fail(name, ": truncated PNG (no IEND chunk at its end: the file is cut off)");
  }
  if (h.format == "JPEG") {
    for (size_t i = n >= 2 ? n - 1 : 0; i-- > 0;)
      if (tail[i] == 0xFF && tail[i + 1] == 0xD9) return;
    fail(name, ": truncated JPEG (no end-of-image marker at its end: the file is cut off)");
  }
}

ImageHeader read_image_header(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  RDD_CHECK(f.good(), path, ": cannot open (missing file or no permission)");
  const std::streamoff size = f.tellg();
  RDD_CHECK(size >= 0, path, ": cannot determine the file size");
  auto read_at = [&](std::streamoff at, size_t count) {
    std::vector<uint8_t> b(count);
    f.seekg(at);
    if (count > 0) f.read(reinterpret_cast<char*>(b.data()), std::streamsize(count));
    RDD_CHECK(f.good(), path, ": read error");
    return b;
  };
  const size_t total = size_t(size);
  std::vector<uint8_t> head = read_at(0, std::min(total, kImageHeadBytes));
  bool incomplete = false;
  ImageHeader h = parse_image_header(head.data(), head.size(), path, &incomplete);
  if (incomplete && head.size() < total) {  // a JPEG frame header far from the start: read it all
    head = read_at(0, total);
    h = parse_image_header(head.data(), head.size(), path);
  } else if (incomplete) {
    h = parse_image_header(head.data(), head.size(), path);  // throws: truncated
  }
  const size_t tail_bytes = std::min<size_t>(total, 4096);
  const std::vector<uint8_t> tail = read_at(std::streamoff(total - tail_bytes), tail_bytes);
  check_image_end(h, tail.data(), tail.size(), path);
  return h;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  RDD_CHECK(f.good(), path, ": cannot open (missing file or no permission)");
  const std::streamoff size = f.tellg();
  RDD_CHECK(size >= 0, path, ": cannot determine the file size");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.seekg(0);
  if (size > 0) f.read(reinterpret_cast<char*>(bytes.data()), size);
  RDD_CHECK(f.good() || (size == 0), path, ": read error");
  return bytes;
}

Image decode_image(const uint8_t* data, size_t size, const std::string& name) {
  RDD_CHECK(size > 0, name, ": empty file, not an image");
  RDD_CHECK(size < size_t(std::numeric_limits<int>::max()), name, ": file too large to decode (", size, " bytes)");
  check_jpeg_huffman_tables(data, size, name);
  bool incomplete = false;
  parse_image_header(data, size, name, &incomplete);  // a clear message for what is not a PNG/JPEG, or too large
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(data, int(size), &w, &h, &c)) {
    const char* why = stbi_failure_reason();
    fail(name, ": not a decodable PNG/JPEG image (", why ? why : "unknown format", ")");
  }
  RDD_CHECK(w > 0 && h > 0 && w <= kMaxSide && h <= kMaxSide && int64_t(w) * h <= kMaxPixels, name,
            ": image size ", w, "x", h, " is out of range");
  int cw = 0, ch = 0, cc = 0;
  stbi_uc* pixels = stbi_load_from_memory(data, int(size), &cw, &ch, &cc, 3);
  if (!pixels) {
    const char* why = stbi_failure_reason();
    fail(name, ": image does not decode (", why ? why : "corrupt data", ")");
  }
  Image img;
  img.height = ch;
  img.width = cw;
  img.channels = 3;
  img.pixels.assign(pixels, pixels + size_t(cw) * size_t(ch) * 3);
  stbi_image_free(pixels);
  return img;
}

Image read_image(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path);
}

LabelImage decode_label_png(const uint8_t* data, size_t size, const std::string& name, Palette* palette_out) {
  RDD_CHECK(size >= 8 && std::memcmp(data, kPngSignature, 8) == 0, name,
            ": not a PNG file (label maps must be 8-bit grey or palette PNGs)");
  size_t pos = 8;
  bool have_header = false, have_end = false;
  uint32_t width = 0, height = 0;
  int bit_depth = 0, colour_type = 0, interlace = 0;
  Palette palette;
  std::vector<uint8_t> idat;
  while (pos < size) {
    RDD_CHECK(size - pos >= 12, name, ": truncated PNG (chunk header cut off at byte ", pos, ")");
    const uint32_t len = be32(data + pos);
    const uint8_t* type = data + pos + 4;
    RDD_CHECK(len <= size - pos - 12, name, ": truncated PNG (chunk '", std::string(reinterpret_cast<const char*>(type), 4),
              "' needs ", len, " bytes, ", size - pos - 12, " left)");
    const uint8_t* body = data + pos + 8;
    const uint32_t crc = be32(body + len);
    RDD_CHECK((crc32_png(type, 4 + size_t(len)) ^ 0xFFFFFFFFu) == crc, name, ": corrupt PNG (CRC mismatch in chunk '",
              std::string(reinterpret_cast<const char*>(type), 4), "')");
    const std::string t(reinterpret_cast<const char*>(type), 4);
    if (t == "IHDR") {
      RDD_CHECK(len == 13 && !have_header, name, ": corrupt PNG (bad IHDR)");
      width = be32(body);
      height = be32(body + 4);
      bit_depth = body[8];
      colour_type = body[9];
      interlace = body[12];
      RDD_CHECK(body[10] == 0 && body[11] == 0, name, ": unknown PNG compression/filter method");
      have_header = true;
    } else {
      RDD_CHECK(have_header, name, ": corrupt PNG (first chunk is '", t, "', not IHDR)");
      if (t == "PLTE") {
        RDD_CHECK(len % 3 == 0 && len / 3 >= 1 && len / 3 <= 256, name, ": corrupt PNG (palette of ", len, " bytes)");
        for (uint32_t i = 0; i < len / 3; ++i) palette.push_back({body[3 * i], body[3 * i + 1], body[3 * i + 2]});
      } else if (t == "IDAT") {
        idat.insert(idat.end(), body, body + len);
      } else if (t == "IEND") {
        have_end = true;
        break;
      } else {
        RDD_CHECK((type[0] & 0x20) != 0, name, ": PNG has an unknown critical chunk '", t, "'");
      }
    }
    pos += 12 + size_t(len);
  }
  RDD_CHECK(have_header, name, ": corrupt PNG (no IHDR)");
  RDD_CHECK(have_end, name, ": truncated PNG (no IEND chunk: the file is cut off)");
  RDD_CHECK(width > 0 && height > 0 && width <= kMaxSide && height <= kMaxSide &&
                int64_t(width) * int64_t(height) <= kMaxPixels,
            name, ": label size ", width, "x", height, " is out of range");
  RDD_CHECK(colour_type == 0 || colour_type == 3, name, ": label PNG has colour type ", colour_type,
            (colour_type == 2 ? " (RGB)" : colour_type == 6 ? " (RGBA)" : colour_type == 4 ? " (grey+alpha)" : ""),
            "; label maps must be 8-bit grey or palette PNGs holding class ids");
  RDD_CHECK(bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8, name, ": label PNG has bit depth ",
            bit_depth, "; label maps must be 8-bit (or 1/2/4-bit) grey or palette PNGs");
  RDD_CHECK(interlace == 0, name, ": interlaced (Adam7) label PNGs are not supported; re-save it without interlacing");
  RDD_CHECK(colour_type != 3 || !palette.empty(), name, ": palette PNG without a PLTE chunk");
  RDD_CHECK(!idat.empty(), name, ": PNG has no image data (IDAT)");

  const size_t row_bytes = (size_t(width) * size_t(bit_depth) + 7) / 8;
  const size_t expected = size_t(height) * (row_bytes + 1);
  RDD_CHECK(expected < size_t(std::numeric_limits<int>::max()) && idat.size() < size_t(std::numeric_limits<int>::max()),
            name, ": PNG too large");
  std::vector<uint8_t> raw(expected);
  const int got = stbi_zlib_decode_buffer(reinterpret_cast<char*>(raw.data()), int(expected),
                                          reinterpret_cast<const char*>(idat.data()), int(idat.size()));
  RDD_CHECK(got >= 0, name, ": corrupt PNG image data (inflate failed: ",
            stbi_failure_reason() ? stbi_failure_reason() : "bad zlib stream", ")");
  RDD_CHECK(size_t(got) == expected, name, ": corrupt PNG image data (", got, " bytes after inflate, expected ",
            expected, " for ", width, "x", height, ")");

  // Undo the per-row filters (bytes per pixel is 1 for ≤ 8-bit single-channel images).
  std::vector<uint8_t> prev(row_bytes, 0), cur(row_bytes);
  LabelImage out;
  out.height = int(height);
  out.width = int(width);
  out.channels = 1;
  out.pixels.resize(size_t(width) * size_t(height));
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t* src = raw.data() + size_t(y) * (row_bytes + 1);
    const uint8_t filter = src[0];
    ++src;
    for (size_t i = 0; i < row_bytes; ++i) {
      const int a = i >= 1 ? cur[i - 1] : 0, b = prev[i], c = i >= 1 ? prev[i - 1] : 0;
      int v = src[i];
      switch (filter) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) / 2; break;
        case 4: v += paeth(a, b, c); break;
        default: fail(name, ": corrupt PNG (row ", y, " has filter type ", int(filter), ")");
      }
      cur[i] = uint8_t(v);
    }
    uint8_t* dst = out.pixels.data() + size_t(y) * width;
    if (bit_depth == 8) {
      std::memcpy(dst, cur.data(), width);
    } else {
      const int per_byte = 8 / bit_depth;
      const int mask = (1 << bit_depth) - 1;
      for (uint32_t x = 0; x < width; ++x) {
        const int shift = 8 - bit_depth * (int(x % uint32_t(per_byte)) + 1);
        dst[x] = uint8_t((cur[x / uint32_t(per_byte)] >> shift) & mask);
      }
    }
    std::swap(prev, cur);
  }
  if (palette_out) *palette_out = palette;
  return out;
}

LabelImage read_label_png(const std::string& path, Palette* palette_out) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_label_png(bytes.data(), bytes.size(), path, palette_out);
}

std::vector<uint8_t> encode_png(const Image& image, int compression, const Palette* palette) {
  RDD_CHECK(image.channels == 1 || image.channels == 3, "encode_png: ", image.channels, " channels (1 or 3 supported)");
  RDD_CHECK(image.width > 0 && image.height > 0 &&
                image.pixels.size() == size_t(image.width) * size_t(image.height) * size_t(image.channels),
            "encode_png: inconsistent image ", image.width, "x", image.height, "x", image.channels);
  RDD_CHECK(compression >= 0 && compression <= 9, "encode_png: compression ", compression, " not in 0..9");
  RDD_CHECK(!palette || (image.channels == 1 && !palette->empty() && palette->size() <= 256),
            "encode_png: a palette needs a 1-channel image of indices and 1..256 colours");
  const size_t stride = size_t(image.width) * size_t(image.channels);
  const int bpp = image.channels;
  // Filter: none for label maps (long runs), Paeth for colour images.
  const uint8_t filter = image.channels == 1 ? 0 : 4;
  std::vector<uint8_t> filtered(size_t(image.height) * (stride + 1));
  for (int y = 0; y < image.height; ++y) {
    const uint8_t* cur = image.row(y);
    const uint8_t* up = y > 0 ? image.row(y - 1) : nullptr;
    uint8_t* dst = filtered.data() + size_t(y) * (stride + 1);
    dst[0] = filter;
    for (size_t i = 0; i < stride; ++i) {
      if (filter == 0) {
        dst[1 + i] = cur[i];
      } else {
        const int a = i >= size_t(bpp) ? cur[i - bpp] : 0, b = up ? up[i] : 0,
                  c = (up && i >= size_t(bpp)) ? up[i - bpp] : 0;
        dst[1 + i] = uint8_t(cur[i] - paeth(a, b, c));
      }
    }
  }
  int zlen = 0;
  unsigned char* z = nullptr;
  std::vector<uint8_t> stored;
  if (compression == 0) {
    stored = zlib_stored(filtered);
    zlen = int(stored.size());
  } else {
    z = stbi_zlib_compress(filtered.data(), int(filtered.size()), &zlen, compression);
    RDD_CHECK(z != nullptr, "encode_png: compression failed");
  }
  std::vector<uint8_t> png(kPngSignature, kPngSignature + 8);
  auto chunk = [&png](const char* type, const uint8_t* body, size_t len) {
    put_be32(png, uint32_t(len));
    const size_t start = png.size();
    png.insert(png.end(), type, type + 4);
    if (len) png.insert(png.end(), body, body + len);
    put_be32(png, crc32_png(png.data() + start, 4 + len) ^ 0xFFFFFFFFu);
  };
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, uint32_t(image.width));
  put_be32(ihdr, uint32_t(image.height));
  ihdr.push_back(8);
  ihdr.push_back(palette ? 3 : image.channels == 1 ? 0 : 2);
  ihdr.push_back(0);
  ihdr.push_back(0);
  ihdr.push_back(0);
  chunk("IHDR", ihdr.data(), ihdr.size());
  if (palette) {
    std::vector<uint8_t> plte;
    for (const auto& c : *palette) plte.insert(plte.end(), c.begin(), c.end());
    chunk("PLTE", plte.data(), plte.size());
  }
  chunk("IDAT", z ? z : stored.data(), size_t(zlen));
  chunk("IEND", nullptr, 0);
  if (z) STBIW_FREE(z);
  return png;
}

void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    RDD_CHECK(f.good(), "cannot create ", tmp);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    RDD_CHECK(f.good(), "write error on ", tmp);
  }
  RDD_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename ", tmp, " to ", path);
}

void write_png(const std::string& path, const Image& image, int compression, const Palette* palette) {
  write_file_bytes(path, encode_png(image, compression, palette));
}

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  RDD_CHECK(image.channels == 3 && image.width > 0 && image.height > 0 &&
                image.pixels.size() == size_t(image.width) * size_t(image.height) * 3,
            "encode_jpeg: needs an RGB image, got ", image.width, "x", image.height, "x", image.channels);
  RDD_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality ", quality, " not in 1..100");
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  RDD_CHECK(stbi_write_jpg_to_func(sink, &out, image.width, image.height, 3, image.pixels.data(), quality) != 0,
            "encode_jpeg: encoding failed");
  return out;
}

void write_jpeg(const std::string& path, const Image& image, int quality) {
  write_file_bytes(path, encode_jpeg(image, quality));
}

Image colorize(const int32_t* ids, int height, int width, const Palette& palette, std::array<uint8_t, 3> ignore_colour) {
  Image out;
  out.height = height;
  out.width = width;
  out.channels = 3;
  out.pixels.resize(size_t(height) * size_t(width) * 3);
  const int32_t n = int32_t(palette.size());
  for (size_t i = 0; i < size_t(height) * size_t(width); ++i) {
    const std::array<uint8_t, 3>& c = (ids[i] >= 0 && ids[i] < n) ? palette[size_t(ids[i])] : ignore_colour;
    out.pixels[3 * i] = c[0];
    out.pixels[3 * i + 1] = c[1];
    out.pixels[3 * i + 2] = c[2];
  }
  return out;
}

}  // namespace rdd::data
