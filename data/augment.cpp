#include "data/augment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "engine/error.h"

namespace rdd::data {

namespace {

// One axis of a resampling: for each destination index, the two source taps and the weight of the
// second (bilinear), or one tap (nearest).
struct Axis {
  std::vector<int> i0, i1;
  std::vector<float> w;
};

Axis bilinear_axis(int src_size, double inv, int begin, int count) {
  Axis a;
  a.i0.resize(size_t(count));
  a.i1.resize(size_t(count));
  a.w.resize(size_t(count));
  for (int d = 0; d < count; ++d) {
    double s = (double(begin + d) + 0.5) * inv - 0.5;
    if (s < 0) s = 0;
    int s0 = int(std::floor(s));
    float w = float(s - s0);
    if (s0 >= src_size - 1) {
      s0 = src_size - 1;
      w = 0;
    }
    a.i0[size_t(d)] = s0;
    a.i1[size_t(d)] = std::min(s0 + 1, src_size - 1);
    a.w[size_t(d)] = w;
  }
  return a;
}

std::vector<int> nearest_axis(int src_size, double inv, int begin, int count) {
  std::vector<int> idx(static_cast<size_t>(count));
  for (int d = 0; d < count; ++d) idx[size_t(d)] = std::min(int(std::floor(double(begin + d) * inv)), src_size - 1);
  return idx;
}

// Resamples the window [y0, y0+h) × [x0, x0+w) of the image scaled by (1/inv_y, 1/inv_x) into an RGB u8
// buffer (h, w, 3), and the label window into (h, w) u8.
void resample_window(const Sample& s, double inv_y, double inv_x, int y0, int x0, int h, int w,
                     std::vector<uint8_t>& img, std::vector<uint8_t>& lab) {
  img.resize(size_t(h) * size_t(w) * 3);
  lab.resize(size_t(h) * size_t(w));
  if (h == 0 || w == 0) return;
  const Axis ay = bilinear_axis(s.image.height, inv_y, y0, h), ax = bilinear_axis(s.image.width, inv_x, x0, w);
  const std::vector<int> ny = nearest_axis(s.label.height, inv_y, y0, h), nx = nearest_axis(s.label.width, inv_x, x0, w);
  // Fixed-point weights with 11 fractional bits, as cv2 resizes 8-bit images (INTER_RESIZE_COEF_BITS).
  constexpr int kOne = 1 << 11;
  std::vector<int> wxi(static_cast<size_t>(w)), c0s(static_cast<size_t>(w)), c1s(static_cast<size_t>(w));
  for (int x = 0; x < w; ++x) {
    wxi[size_t(x)] = int(std::lround(ax.w[size_t(x)] * kOne));
    c0s[size_t(x)] = ax.i0[size_t(x)] * 3;
    c1s[size_t(x)] = ax.i1[size_t(x)] * 3;
  }
  for (int y = 0; y < h; ++y) {
    const uint8_t* r0 = s.image.row(ay.i0[size_t(y)]);
    const uint8_t* r1 = s.image.row(ay.i1[size_t(y)]);
    const int wy = int(std::lround(ay.w[size_t(y)] * kOne));
    uint8_t* dst = img.data() + size_t(y) * size_t(w) * 3;
    for (int x = 0; x < w; ++x) {
      const int c0 = c0s[size_t(x)], c1 = c1s[size_t(x)];
      const int wx = wxi[size_t(x)];
      for (int c = 0; c < 3; ++c) {
        const int top = int(r0[c0 + c]) * (kOne - wx) + int(r0[c1 + c]) * wx;
        const int bot = int(r1[c0 + c]) * (kOne - wx) + int(r1[c1 + c]) * wx;
        dst[3 * x + c] = uint8_t((top * (kOne - wy) + bot * wy + (1 << 21)) >> 22);
      }
    }
    const uint8_t* lr = s.label.row(ny[size_t(y)]);
    uint8_t* ld = lab.data() + size_t(y) * size_t(w);
    for (int x = 0; x < w; ++x) ld[x] = lr[nx[size_t(x)]];
  }
}

// Writes the (h, w) window into the (crop_h, crop_w) outputs: normalised CHW floats and int32 labels,
// padding the rest with 0 / −1. flip_crop mirrors the whole padded crop (cirkd: flip after padding);
// flip_window mirrors only the window before padding on the right (mmseg: flip before Pad).
void write_output(const std::vector<uint8_t>& img, const std::vector<uint8_t>& lab, int h, int w, int crop_h,
                  int crop_w, const Normalization& n, bool flip_crop, bool flip_window, float* out_image,
                  int32_t* out_label) {
  const size_t plane = size_t(crop_h) * size_t(crop_w);
  const int src_c[3] = {n.bgr ? 2 : 0, 1, n.bgr ? 0 : 2};
  // (v − mean) / std for every u8 value, per output channel.
  float lut[3][256];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) lut[c][v] = (float(v) - n.mean[c]) / n.stdev[c];
  float* out_c[3] = {out_image, out_image + plane, out_image + 2 * plane};
  for (int y = 0; y < crop_h; ++y) {
    const size_t row = size_t(y) * size_t(crop_w);
    // Output column of window column x: mirrored within the crop (cirkd) or within the window (mmseg).
    const long step = flip_crop ? -1 : 1;
    const long first = flip_crop ? long(crop_w) - 1 : 0;
    if (y < h) {
      const uint8_t* src = img.data() + size_t(y) * size_t(w) * 3;
      const uint8_t* lsrc = lab.data() + size_t(y) * size_t(w);
      for (int x = 0; x < w; ++x) {
        const int sx = flip_window ? w - 1 - x : x;
        const size_t o = row + size_t(first + step * x);
        const uint8_t* p = src + size_t(sx) * 3;
        out_c[0][o] = lut[0][p[src_c[0]]];
        out_c[1][o] = lut[1][p[src_c[1]]];
        out_c[2][o] = lut[2][p[src_c[2]]];
        const uint8_t l = lsrc[sx];
        out_label[o] = l == kIgnoreU8 ? kIgnore : int32_t(l);
      }
    }
    for (int x = (y < h ? w : 0); x < crop_w; ++x) {
      const size_t o = row + size_t(first + step * x);
      out_c[0][o] = out_c[1][o] = out_c[2][o] = 0.0f;
      out_label[o] = kIgnore;
    }
  }
}

// ----------------------------------------------------------------------------------------------
// mmseg PhotoMetricDistortion on an RGB u8 buffer (cv2's u8 HSV convention: H in [0, 180)).
// ----------------------------------------------------------------------------------------------

uint8_t clip_u8(float v) { return uint8_t(std::clamp(v, 0.0f, 255.0f)); }  // astype(uint8) after clip truncates

void convert(std::vector<uint8_t>& img, float alpha, float beta) {
  for (uint8_t& v : img) v = clip_u8(float(v) * alpha + beta);
}

void rgb_to_hsv(uint8_t r, uint8_t g, uint8_t b, uint8_t& h, uint8_t& s, uint8_t& v) {
  const int mx = std::max({r, g, b}), mn = std::min({r, g, b});
  v = uint8_t(mx);
  const int d = mx - mn;
  s = mx == 0 ? 0 : uint8_t(std::lround(255.0 * d / mx));
  if (d == 0) {
    h = 0;
    return;
  }
  double hh;
  if (mx == r) hh = 60.0 * (g - b) / d;
  else if (mx == g) hh = 120.0 + 60.0 * (b - r) / d;
  else hh = 240.0 + 60.0 * (r - g) / d;
  if (hh < 0) hh += 360.0;
  h = uint8_t(int(std::lround(hh / 2.0)) % 180);
}

void hsv_to_rgb(uint8_t h, uint8_t s, uint8_t v, uint8_t& r, uint8_t& g, uint8_t& b) {
  const double hh = double(h) * 2.0 / 60.0, ss = s / 255.0, vv = v;
  const int i = int(std::floor(hh)) % 6;
  const double f = hh - std::floor(hh);
  const double p = vv * (1 - ss), q = vv * (1 - ss * f), t = vv * (1 - ss * (1 - f));
  double rr, gg, bb;
  switch (i) {
    case 0: rr = vv, gg = t, bb = p; break;
    case 1: rr = q, gg = vv, bb = p; break;
    case 2: rr = p, gg = vv, bb = t; break;
    case 3: rr = p, gg = q, bb = vv; break;
    case 4: rr = t, gg = p, bb = vv; break;
    default: rr = vv, gg = p, bb = q; break;
  }
  r = uint8_t(std::clamp(std::lround(rr), 0l, 255l));
  g = uint8_t(std::clamp(std::lround(gg), 0l, 255l));
  b = uint8_t(std::clamp(std::lround(bb), 0l, 255l));
}

float uniform(PhiloxStream& rng, float lo, float hi) { return lo + (hi - lo) * rng.next_uniform(); }

void photometric_distortion(std::vector<uint8_t>& img, PhiloxStream& rng) {
  if (rng.next_int(0, 2)) convert(img, 1.0f, uniform(rng, -32.0f, 32.0f));  // brightness
  const bool contrast_first = rng.next_int(0, 2) == 1;
  auto contrast = [&] {
    if (rng.next_int(0, 2)) convert(img, uniform(rng, 0.5f, 1.5f), 0.0f);
  };
  if (contrast_first) contrast();
  const bool sat = rng.next_int(0, 2) == 1;
  const float sat_alpha = sat ? uniform(rng, 0.5f, 1.5f) : 1.0f;
  const bool hue = rng.next_int(0, 2) == 1;
  const int hue_delta = hue ? int(rng.next_int(-18, 18)) : 0;  // np.random.randint(-18, 18): [-18, 18)
  if (sat || hue) {
    for (size_t i = 0; i + 2 < img.size(); i += 3) {
      uint8_t h, s, v;
      rgb_to_hsv(img[i], img[i + 1], img[i + 2], h, s, v);
      if (sat) s = clip_u8(float(s) * sat_alpha);
      if (hue) h = uint8_t(((int(h) + hue_delta) % 180 + 180) % 180);
      hsv_to_rgb(h, s, v, img[i], img[i + 1], img[i + 2]);
    }
  }
  if (!contrast_first) contrast();
}

void check_sample(const Sample& s, const char* who) {
  RDD_CHECK(s.image.channels == 3 && s.image.height > 0 && s.image.width > 0, who, ": sample image must be RGB, got ",
            s.image.width, "x", s.image.height, "x", s.image.channels);
  RDD_CHECK(s.label.channels == 1 && s.label.height == s.image.height && s.label.width == s.image.width, who,
            ": label ", s.label.width, "x", s.label.height, " does not match image ", s.image.width, "x",
            s.image.height);
}

}  // namespace

const char* preset_name(Preset p) { return p == Preset::cirkd ? "cirkd" : "mmseg"; }

Normalization preset_normalization(Preset p) {
  Normalization n;
  if (p == Preset::cirkd) {
    n.bgr = true;
    const float mean[3] = {104.00698793f, 116.66876762f, 122.67891434f};
    for (int c = 0; c < 3; ++c) n.mean[c] = mean[c], n.stdev[c] = 1.0f;
  } else {
    n.bgr = false;
    const float mean[3] = {123.675f, 116.28f, 103.53f}, sd[3] = {58.395f, 57.12f, 57.375f};
    for (int c = 0; c < 3; ++c) n.mean[c] = mean[c], n.stdev[c] = sd[c];
  }
  return n;
}

AugmentConfig augment_preset(const std::string& name, int crop_h, int crop_w, const std::string& dataset) {
  RDD_CHECK(crop_h > 0 && crop_w > 0, "augment: crop ", crop_h, "x", crop_w, " must be positive");
  AugmentConfig c;
  if (name == "cirkd") c.preset = Preset::cirkd;
  else if (name == "mmseg") c.preset = Preset::mmseg;
  else fail("augment: unknown preset '", name, "' (cirkd or mmseg)");
  c.crop_h = crop_h;
  c.crop_w = crop_w;
  c.norm = preset_normalization(c.preset);
  if (dataset == "cityscapes" || (dataset.empty() && crop_w >= 2 * crop_h)) {
    c.scale_long = 2048;
    c.scale_short = 1024;
  } else if (dataset == "camvid") {
    c.scale_long = 960;
    c.scale_short = 720;
  } else {
    c.scale_long = 2048;
    c.scale_short = 512;
  }
  return c;
}

PhiloxStream sample_stream(uint64_t seed, uint64_t slot) {
  // A fixed salt keeps augmentation streams apart from other users of (seed, offset).
  return PhiloxStream(seed ^ 0xa5a5d1a7a0000000ull, slot);
}

Image resize_bilinear(const Image& src, int out_h, int out_w, double inv_y, double inv_x) {
  RDD_CHECK(src.channels == 3 || src.channels == 1, "resize_bilinear: ", src.channels, " channels");
  Sample s;
  s.image = src;
  if (src.channels == 1) {  // reuse the RGB path on a grey image by replicating the channel
    s.image.channels = 3;
    s.image.pixels.resize(src.pixels.size() * 3);
    for (size_t i = 0; i < src.pixels.size(); ++i)
      s.image.pixels[3 * i] = s.image.pixels[3 * i + 1] = s.image.pixels[3 * i + 2] = src.pixels[i];
  }
  s.label.height = src.height;
  s.label.width = src.width;
  s.label.channels = 1;
  s.label.pixels.assign(size_t(src.height) * size_t(src.width), 0);
  std::vector<uint8_t> img, lab;
  resample_window(s, inv_y, inv_x, 0, 0, out_h, out_w, img, lab);
  Image out;
  out.height = out_h;
  out.width = out_w;
  out.channels = src.channels;
  if (src.channels == 3) {
    out.pixels = std::move(img);
  } else {
    out.pixels.resize(size_t(out_h) * size_t(out_w));
    for (size_t i = 0; i < out.pixels.size(); ++i) out.pixels[i] = img[3 * i];
  }
  return out;
}

Image resize_nearest(const Image& src, int out_h, int out_w, double inv_y, double inv_x) {
  const std::vector<int> ny = nearest_axis(src.height, inv_y, 0, out_h), nx = nearest_axis(src.width, inv_x, 0, out_w);
  Image out;
  out.height = out_h;
  out.width = out_w;
  out.channels = src.channels;
  out.pixels.resize(size_t(out_h) * size_t(out_w) * size_t(src.channels));
  for (int y = 0; y < out_h; ++y) {
    const uint8_t* r = src.row(ny[size_t(y)]);
    uint8_t* d = out.row(y);
    for (int x = 0; x < out_w; ++x)
      for (int c = 0; c < src.channels; ++c) d[x * src.channels + c] = r[nx[size_t(x)] * src.channels + c];
  }
  return out;
}

AugmentRecord plan_cirkd(int height, int width, const AugmentConfig& cfg, PhiloxStream& rng) {
  RDD_CHECK(cfg.preset == Preset::cirkd, "plan_cirkd: preset ", preset_name(cfg.preset), " is not cirkd");
  // cv2.resize(None, fx=f, fy=f): size round(W·f), mapping by 1/f; then the crop offsets and the flip.
  AugmentRecord r;
  const int k = int(rng.next_int(0, 16));
  r.scale = 0.5 + double(k) / 10.0;
  r.scaled_h = std::max(1, int(std::lrint(double(height) * r.scale)));
  r.scaled_w = std::max(1, int(std::lrint(double(width) * r.scale)));
  const int padded_h = std::max(r.scaled_h, cfg.crop_h), padded_w = std::max(r.scaled_w, cfg.crop_w);
  r.crop_y = int(rng.next_int(0, padded_h - cfg.crop_h + 1));
  r.crop_x = int(rng.next_int(0, padded_w - cfg.crop_w + 1));
  r.flipped = cfg.flip && rng.next_int(0, 2) == 1;
  return r;
}

AugmentRecord augment_train(const Sample& s, const AugmentConfig& cfg, PhiloxStream& rng, float* out_image,
                            int32_t* out_label) {
  check_sample(s, "augment_train");
  AugmentRecord r;
  const int H = s.image.height, W = s.image.width;
  std::vector<uint8_t> img, lab;
  if (cfg.preset == Preset::cirkd) {
    r = plan_cirkd(H, W, cfg, rng);
    const int h = std::max(0, std::min(cfg.crop_h, r.scaled_h - r.crop_y));
    const int w = std::max(0, std::min(cfg.crop_w, r.scaled_w - r.crop_x));
    resample_window(s, 1.0 / r.scale, 1.0 / r.scale, r.crop_y, r.crop_x, h, w, img, lab);
    write_output(img, lab, h, w, cfg.crop_h, cfg.crop_w, cfg.norm, r.flipped, false, out_image, out_label);
    return r;
  }
  // mmseg: RandomResize(scale=(long, short)·ratio, keep_ratio) → mmcv.imrescale.
  const double ratio = double(uniform(rng, cfg.ratio_min, cfg.ratio_max));
  const double long_edge = double(int(double(cfg.scale_long) * ratio)), short_edge = double(int(double(cfg.scale_short) * ratio));
  const double sf = std::min(std::max(long_edge, short_edge) / double(std::max(H, W)),
                             std::min(long_edge, short_edge) / double(std::min(H, W)));
  r.scale = sf;
  r.scaled_w = std::max(1, int(double(W) * sf + 0.5));
  r.scaled_h = std::max(1, int(double(H) * sf + 0.5));
  const double inv_y = double(H) / r.scaled_h, inv_x = double(W) / r.scaled_w;  // cv2 with dsize
  // RandomCrop with cat_max_ratio: draw up to 10 crops, keep the first whose most frequent class covers
  // less than cat_max_ratio of the labelled pixels (the label is resized fully: it is cheap).
  const Image full_label = resize_nearest(s.label, r.scaled_h, r.scaled_w, inv_y, inv_x);
  const int h = std::min(cfg.crop_h, r.scaled_h), w = std::min(cfg.crop_w, r.scaled_w);
  for (r.crop_tries = 1;; ++r.crop_tries) {
    r.crop_y = int(rng.next_int(0, r.scaled_h - h + 1));
    r.crop_x = int(rng.next_int(0, r.scaled_w - w + 1));
    if (cfg.cat_max_ratio >= 1.0f || r.crop_tries >= 10) break;
    std::array<int64_t, 256> hist{};
    for (int y = 0; y < h; ++y) {
      const uint8_t* row = full_label.row(r.crop_y + y) + r.crop_x;
      for (int x = 0; x < w; ++x) ++hist[row[x]];
    }
    int64_t total = 0, largest = 0;
    int classes = 0;
    for (int v = 0; v < 255; ++v)
      if (hist[size_t(v)]) ++classes, total += hist[size_t(v)], largest = std::max(largest, hist[size_t(v)]);
    if (classes > 1 && double(largest) / double(total) < cfg.cat_max_ratio) break;
  }
  r.flipped = cfg.flip && rng.next_int(0, 2) == 1;
  resample_window(s, inv_y, inv_x, r.crop_y, r.crop_x, h, w, img, lab);
  if (cfg.photometric) photometric_distortion(img, rng);
  write_output(img, lab, h, w, cfg.crop_h, cfg.crop_w, cfg.norm, false, r.flipped, out_image, out_label);
  return r;
}

void transform_eval(const Sample& s, const Normalization& norm, float* out_image, int32_t* out_label) {
  check_sample(s, "transform_eval");
  write_output(s.image.pixels, s.label.pixels, s.image.height, s.image.width, s.image.height, s.image.width, norm,
               false, false, out_image, out_label);
}

}  // namespace rdd::data
