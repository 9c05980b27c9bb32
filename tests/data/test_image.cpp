#include "data/image.h"

#include <filesystem>
#include <set>

#include "engine/error.h"
#include "engine/philox.h"
#include "fixtures.h"
#include "harness.h"

using namespace rdd;
using namespace rdd::data;
namespace fs = std::filesystem;

namespace {
std::string message_of(const std::function<void()>& f) { return test::error_message(f); }
}  // namespace

TEST_CASE("PNG round trip: RGB through stb_image, grey through the label reader") {
  const std::string dir = test::temp_dir("img");
  const Image rgb = test::make_rgb(13, 17, 1);
  write_png(dir + "/a.png", rgb);
  const Image back = read_image(dir + "/a.png");
  CHECK(back.height == 13);
  CHECK(back.width == 17);
  CHECK(back.channels == 3);
  CHECK(back.pixels == rgb.pixels);

  const Image grey = test::make_blocks(9, 11, {0, 7, 33, 255, 19}, 2);
  write_png(dir + "/g.png", grey);
  Palette pal;
  const LabelImage lab = read_label_png(dir + "/g.png", &pal);
  CHECK(lab.channels == 1);
  CHECK(lab.pixels == grey.pixels);
  CHECK(pal.empty());
  // stb_image reads the same grey PNG as RGB with equal channels.
  const Image as_rgb = read_image(dir + "/g.png");
  for (size_t i = 0; i < grey.pixels.size(); ++i) CHECK(as_rgb.pixels[3 * i + 1] == grey.pixels[i]);
}

TEST_CASE("stored (uncompressed) PNGs decode with both readers") {
  const Image rgb = test::make_rgb(300, 250, 4);  // > 65535 bytes: several stored blocks
  const std::vector<uint8_t> png = encode_png(rgb, 0);
  CHECK(png.size() > rgb.pixels.size());
  CHECK(decode_image(png.data(), png.size(), "stored").pixels == rgb.pixels);
  const Image grey = test::make_blocks(300, 250, {1, 200, 3}, 5);
  const std::vector<uint8_t> g = encode_png(grey, 0);
  CHECK(decode_label_png(g.data(), g.size(), "stored").pixels == grey.pixels);
}

TEST_CASE("palette label PNGs give palette indices, not colours") {
  const std::string dir = test::temp_dir("pal");
  const Palette voc = {{0, 0, 0}, {128, 0, 0}, {0, 128, 0}, {128, 128, 0}, {224, 224, 192}};
  const Image idx = test::make_blocks(10, 12, {0, 1, 2, 3, 4, 1}, 3);
  write_png(dir + "/p.png", idx, 6, &voc);
  Palette got;
  const LabelImage lab = read_label_png(dir + "/p.png", &got);
  CHECK(lab.pixels == idx.pixels);
  CHECK(got == voc);
  // stb_image expands the palette to colours: the reason the label reader exists.
  const Image rgb = read_image(dir + "/p.png");
  CHECK(rgb.pixels[0] == voc[idx.pixels[0]][0]);
  const size_t i = 3;  // a pixel of index 1
  REQUIRE(idx.pixels[i] == 1);
  CHECK(rgb.pixels[3 * i] == 128);
}

TEST_CASE("label PNGs written by PIL (palette 1/2/4/8-bit, grey, filters) decode to the same indices") {
  const std::string dir = test::temp_dir("pil");
  // PIL is an independent encoder (Debian's python3-pil comes with python3-torch's dependencies);
  // without it this case says so and checks nothing else.
  std::string out;
  const std::string script =
      "import numpy as np, sys\n"
      "from PIL import Image\n"
      "d=sys.argv[1]\n"
      "rng=np.random.RandomState(3)\n"
      "for bits,n in ((1,2),(2,4),(4,16),(8,200)):\n"
      "  a=rng.randint(0,n,size=(23,37)).astype(np.uint8)\n"
      "  im=Image.fromarray(a,'P'); im.putpalette(list(rng.randint(0,256,size=3*n)))\n"
      "  im.save(f'{d}/p{bits}.png', bits=bits, optimize=False)\n"
      "  np.save(f'{d}/p{bits}.npy', a)\n"
      "g=rng.randint(0,256,size=(31,29)).astype(np.uint8)\n"
      "Image.fromarray(g,'L').save(f'{d}/g.png'); np.save(f'{d}/g.npy', g)\n"
      "rgb=rng.randint(0,256,size=(5,6,3)).astype(np.uint8)\n"
      "Image.fromarray(rgb,'RGB').save(f'{d}/rgb.png')\n"
      "print('ok')\n";
  test::write_text(fs::path(dir) / "make.py", script);
  const int rc = test::run_command(test::python() + " " + dir + "/make.py " + dir, &out);
  if (rc != 0 || out.find("ok") == std::string::npos) {
    MESSAGE("PIL not available (" << out << "); skipping the independent-encoder check");
    return;
  }
  auto load_npy = [](const std::string& p) {  // uint8 2-D .npy (version 1, C order)
    const std::vector<uint8_t> b = read_file_bytes(p);
    const size_t header = size_t(b[8]) | (size_t(b[9]) << 8);
    return std::vector<uint8_t>(b.begin() + 10 + long(header), b.end());
  };
  for (const char* name : {"p1", "p2", "p4", "p8", "g"}) {
    CAPTURE(name);
    const LabelImage lab = read_label_png(dir + "/" + name + ".png");
    CHECK(lab.pixels == load_npy(dir + "/" + name + ".npy"));
  }
  const std::string msg = message_of([&] { read_label_png(dir + "/rgb.png"); });
  CHECK(msg.find("rgb.png") != std::string::npos);
  CHECK(msg.find("colour type 2") != std::string::npos);
}

TEST_CASE("JPEG round trip is close") {
  const std::string dir = test::temp_dir("jpg");
  Image smooth;
  smooth.height = 16;
  smooth.width = 24;
  smooth.channels = 3;
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 24; ++x)
      for (int c = 0; c < 3; ++c) smooth.pixels.push_back(uint8_t(40 + 5 * x + 3 * y + 20 * c));
  write_jpeg(dir + "/a.jpg", smooth, 95);
  const Image back = read_image(dir + "/a.jpg");
  REQUIRE(back.pixels.size() == smooth.pixels.size());
  int worst = 0;
  for (size_t i = 0; i < back.pixels.size(); ++i) worst = std::max(worst, std::abs(int(back.pixels[i]) - int(smooth.pixels[i])));
  CHECK(worst < 12);
}

TEST_CASE("bad image files stop with a message naming the file and the problem") {
  const std::string dir = test::temp_dir("bad");
  const Image rgb = test::make_rgb(20, 30, 2);
  const std::vector<uint8_t> png = encode_png(rgb);
  const std::vector<uint8_t> grey_png = encode_png(test::make_blocks(20, 30, {1, 2, 3}));

  const std::string missing = message_of([&] { read_image(dir + "/nope.png"); });
  CHECK(missing.find("nope.png") != std::string::npos);
  CHECK(missing.find("cannot open") != std::string::npos);

  write_file_bytes(dir + "/trunc.png", std::vector<uint8_t>(png.begin(), png.begin() + long(png.size() / 2)));
  const std::string trunc = message_of([&] { read_image(dir + "/trunc.png"); });
  CHECK(trunc.find("trunc.png") != std::string::npos);
  CHECK(!trunc.empty());

  std::vector<uint8_t> noise(3000);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = uint8_t(philox::u32(5, 0, i));
  write_file_bytes(dir + "/noise.png", noise);
  CHECK(message_of([&] { read_image(dir + "/noise.png"); }).find("noise.png: not a decodable PNG/JPEG") != std::string::npos);
  CHECK(message_of([&] { read_label_png(dir + "/noise.png"); }).find("noise.png: not a PNG file") != std::string::npos);

  test::write_text(fs::path(dir) / "text.png", "image label\nthis is a text file, not an image\n");
  CHECK(message_of([&] { read_image(dir + "/text.png"); }).find("text.png: not a decodable") != std::string::npos);

  write_file_bytes(dir + "/empty.png", {});
  CHECK(message_of([&] { read_image(dir + "/empty.png"); }).find("empty.png: empty file") != std::string::npos);

  // Label reader: truncated file, corrupted CRC, corrupted data.
  write_file_bytes(dir + "/lt.png", std::vector<uint8_t>(grey_png.begin(), grey_png.end() - 20));
  CHECK(message_of([&] { read_label_png(dir + "/lt.png"); }).find("lt.png: truncated PNG") != std::string::npos);
  std::vector<uint8_t> bad_crc = grey_png;
  bad_crc[40] ^= 0x55;  // inside IDAT
  write_file_bytes(dir + "/crc.png", bad_crc);
  CHECK(message_of([&] { read_label_png(dir + "/crc.png"); }).find("CRC mismatch") != std::string::npos);
}

TEST_CASE("fuzz: corrupted PNG and JPEG bytes either decode or throw rdd::Error, never crash") {
  const Image rgb = test::make_rgb(24, 40, 3);
  const std::vector<std::vector<uint8_t>> seeds = {encode_png(rgb, 1), encode_jpeg(rgb, 80),
                                                   encode_png(test::make_blocks(24, 40, {0, 3, 9, 250}), 6),
                                                   encode_png(test::make_blocks(24, 40, {0, 3, 9}), 6, nullptr)};
  int decoded = 0, refused = 0;
  for (size_t s = 0; s < seeds.size(); ++s) {
    for (uint64_t trial = 0; trial < 150; ++trial) {
      std::vector<uint8_t> b = seeds[s];
      const uint32_t mode = philox::u32(s, trial, 0) % 3;
      if (mode == 0) {  // truncate
        b.resize(size_t(philox::u32(s, trial, 1) % b.size()));
      } else {  // flip 1..8 random bytes (mode 2: only past the headers)
        const int flips = 1 + int(philox::u32(s, trial, 2) % 8);
        for (int f = 0; f < flips; ++f) {
          const size_t lo = mode == 2 ? std::min<size_t>(40, b.size() - 1) : 0;
          const size_t at = lo + philox::u32(s, trial, 3 + uint64_t(f)) % (b.size() - lo);
          b[at] = uint8_t(philox::u32(s, trial, 20 + uint64_t(f)));
        }
      }
      for (int reader = 0; reader < 2; ++reader) {
        try {
          if (reader == 0) {
            const Image im = decode_image(b.data(), b.size(), "fuzz");
            CHECK(im.pixels.size() == size_t(im.width) * size_t(im.height) * 3);
          } else {
            const LabelImage l = decode_label_png(b.data(), b.size(), "fuzz");
            CHECK(l.pixels.size() == size_t(l.width) * size_t(l.height));
          }
          ++decoded;
        } catch (const Error& e) {
          CHECK(std::string(e.what()).rfind("fuzz", 0) == 0);  // names the file
          ++refused;
        }
      }
    }
  }
  CHECK(refused > 100);
  CHECK(decoded > 0);
}

TEST_CASE("a JPEG Huffman table with more than 256 codes is refused before stb_image sees it") {
  std::vector<uint8_t> jpg = encode_jpeg(test::make_rgb(16, 16, 5), 90);
  // Find the first DHT segment and raise its first count so the table declares > 256 codes.
  size_t at = 0;
  for (size_t i = 2; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC4) {
      at = i;
      break;
    }
  REQUIRE(at > 0);
  for (int k = 0; k < 16; ++k) jpg[at + 5 + size_t(k)] = 200;
  CHECK(message_of([&] { decode_image(jpg.data(), jpg.size(), "bad.jpg"); }).find("bad.jpg: corrupt JPEG (a Huffman table") !=
        std::string::npos);
}

TEST_CASE("colorize maps ids through the palette and ignore to the ignore colour") {
  const Palette pal = {{1, 2, 3}, {4, 5, 6}};
  const int32_t ids[4] = {0, 1, -1, 7};
  const Image c = colorize(ids, 2, 2, pal, {9, 9, 9});
  CHECK(c.pixels == std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 9, 9, 9, 9, 9, 9});
}

TEST_CASE("a corrupt header claiming a huge image is refused before allocating") {
  std::vector<uint8_t> png = encode_png(test::make_blocks(4, 4, {1, 2}));
  // IHDR width/height live at bytes 16..23; claim 30000×30000 and fix the CRC so only the size is wrong.
  auto put = [&](size_t at, uint32_t v) {
    png[at] = uint8_t(v >> 24), png[at + 1] = uint8_t(v >> 16), png[at + 2] = uint8_t(v >> 8), png[at + 3] = uint8_t(v);
  };
  put(16, 30000);
  put(20, 30000);
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 12; i < 29; ++i) {
    crc ^= png[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  put(29, crc ^ 0xFFFFFFFFu);
  CHECK(message_of([&] { decode_label_png(png.data(), png.size(), "huge.png"); }).find("huge.png: label size 30000x30000 is out of range") !=
        std::string::npos);
  CHECK(message_of([&] { decode_image(png.data(), png.size(), "huge.png"); }).find("huge.png: image size 30000x30000") !=
        std::string::npos);
}
