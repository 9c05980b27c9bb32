#include "data/synth.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <vector>

#include "data/dataset.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "engine/thread_pool.h"

namespace rdd::data {

namespace {

namespace id = cityscapes_id;

// ----------------------------------------------------------------------------------------------
// Noise: a cheap integer hash (textures need many samples per pixel; Philox decides the scene).
// ----------------------------------------------------------------------------------------------

inline uint32_t hash3(int32_t x, int32_t y, uint32_t s) {
  uint32_t h = uint32_t(x) * 0x9E3779B1u ^ uint32_t(y) * 0x85EBCA77u ^ s * 0xC2B2AE3Du;
  h ^= h >> 15;
  h *= 0x2C1B3C6Du;
  h ^= h >> 12;
  h *= 0x297A2D39u;
  h ^= h >> 15;
  return h;
}
inline float hashf(int32_t x, int32_t y, uint32_t s) { return float(hash3(x, y, s) >> 8) * (1.0f / 16777216.0f); }
// Signed white noise in [-1, 1).
inline float white(int32_t x, int32_t y, uint32_t s) { return 2.0f * hashf(x, y, s) - 1.0f; }

// Smooth value noise in [0, 1) at coordinates in lattice units.
float vnoise(float x, float y, uint32_t s) {
  const float fx = std::floor(x), fy = std::floor(y);
  const int32_t ix = int32_t(fx), iy = int32_t(fy);
  float tx = x - fx, ty = y - fy;
  tx = tx * tx * (3 - 2 * tx);
  ty = ty * ty * (3 - 2 * ty);
  const float a = hashf(ix, iy, s), b = hashf(ix + 1, iy, s), c = hashf(ix, iy + 1, s), d = hashf(ix + 1, iy + 1, s);
  return a + (b - a) * tx + (c - a) * ty + (a - b - c + d) * tx * ty;
}
float fbm(float x, float y, uint32_t s, int octaves) {
  float sum = 0, amp = 0.5f, norm = 0;
  for (int o = 0; o < octaves; ++o) {
    sum += amp * vnoise(x, y, s + uint32_t(o) * 101u);
    norm += amp;
    x *= 2.03f;
    y *= 2.03f;
    amp *= 0.5f;
  }
  return sum / norm;
}
inline float frac(float v) { return v - std::floor(v); }

struct Rgb {
  float r = 0, g = 0, b = 0;
};
inline Rgb operator*(Rgb c, float k) { return {c.r * k, c.g * k, c.b * k}; }
inline Rgb operator+(Rgb a, Rgb b) { return {a.r + b.r, a.g + b.g, a.b + b.b}; }
inline Rgb mix(Rgb a, Rgb b, float t) { return a * (1 - t) + b * t; }
inline Rgb grey(float v) { return {v, v, v}; }

// ----------------------------------------------------------------------------------------------
// The scene
// ----------------------------------------------------------------------------------------------

struct Segment {  // a stretch of facade along the street
  float z0, z1;
  int kind;  // 0 building, 1 gap (trees/sky behind), 2 low wall, 3 fence
  float height;
  Rgb colour;
  float win_dx, win_w, win_h;
  uint32_t tex;
  bool brick;
};

struct Canvas {
  int H, W;
  std::vector<Rgb> rgb;
  std::vector<uint8_t> lab;
  void put(int x, int y, uint8_t l, Rgb c) {
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    const size_t i = size_t(y) * size_t(W) + size_t(x);
    lab[i] = l;
    rgb[i] = c;
  }
};

class Scene {
 public:
  Scene(uint64_t seed, uint64_t index, int H, int W) : rng_(seed, index), H_(H), W_(W) {
    c_.H = H;
    c_.W = W;
    c_.rgb.resize(size_t(H) * size_t(W));
    c_.lab.assign(size_t(H) * size_t(W), id::unlabeled);
    tex_ = rng_.next_u32();
    hy_ = float(H) * u(0.28f, 0.42f);
    vx_ = float(W) * u(0.40f, 0.60f);
    ppm_b_ = float(W) / u(12.0f, 18.0f);
    z0_ = u(4.0f, 6.0f);
    road_l_ = u(3.5f, 7.5f);
    road_r_ = u(3.5f, 7.5f);
    side_l_ = u(1.5f, 4.0f);
    side_r_ = u(1.5f, 4.0f);
    terr_l_ = chance(0.4f) ? u(1.0f, 3.5f) : 0.0f;
    terr_r_ = chance(0.4f) ? u(1.0f, 3.5f) : 0.0f;
    face_l_ = road_l_ + side_l_ + terr_l_;
    face_r_ = road_r_ + side_r_ + terr_r_;
    parking_l_ = chance(0.2f);
    parking_r_ = chance(0.2f);
    crosswalk_z_ = chance(0.3f) ? u(10.0f, 40.0f) : -1.0f;
    // Lighting and colour palette of this image.
    light_ = u(0.7f, 1.2f);
    overcast_ = chance(0.35f);
    sky_top_ = overcast_ ? grey(u(150, 200)) : Rgb{u(40, 90), u(90, 140), u(170, 230)};
    sky_low_ = overcast_ ? grey(u(185, 225)) : Rgb{u(160, 210), u(190, 225), u(215, 245)};
    haze_z_ = u(80.0f, 300.0f);
    road_base_ = u(70, 115);
    road_tint_ = {u(-6, 6), u(-6, 6), u(-4, 8)};
    side_base_ = chance(0.5f) ? Rgb{u(150, 200), u(120, 160), u(115, 150)} : grey(u(road_base_ + 10, road_base_ + 70));
    tile_ = u(0.3f, 0.7f);
    grass_ = {u(70, 120), u(110, 160), u(40, 80)};
    leaf_ = {u(40, 90), u(80, 130), u(20, 60)};
    shadow_l_ = chance(0.5f) ? u(0.0f, road_l_ + side_l_ + 4.0f) : 0.0f;
    shadow_r_ = chance(0.5f) ? u(0.0f, road_r_ + side_r_ + 4.0f) : 0.0f;
    z_max_l_ = u(40.0f, 160.0f);
    z_max_r_ = u(40.0f, 160.0f);
    make_segments(seg_l_, z_max_l_);
    make_segments(seg_r_, z_max_r_);
    skyline_ = chance(0.6f);
    skyline_h_ = u(0.03f, 0.12f) * float(H);
  }

  SynthScene render() {
    background();
    objects();
    SynthScene out;
    finish(out);
    return out;
  }

 private:
  float u(float lo, float hi) { return lo + (hi - lo) * rng_.next_uniform(); }
  bool chance(float p) { return rng_.next_uniform() < p; }
  int pick(int n) { return int(rng_.next_int(0, n)); }

  float ppm_at_row(float y) const { return ppm_b_ * (y - hy_) / (float(H_) - hy_); }  // pixels per metre
  float row_at_depth(float z) const { return hy_ + (float(H_) - hy_) * z0_ / z; }
  float ppm_at_depth(float z) const { return ppm_b_ * z0_ / z; }
  float haze(float z) const { return 1.0f - std::exp(-z / haze_z_); }

  void make_segments(std::vector<Segment>& segs, float z_max) {
    float z = z0_ * u(0.5f, 1.0f);
    while (z < z_max) {
      Segment s;
      s.z0 = z;
      s.z1 = z + u(8.0f, 30.0f);
      const float r = rng_.next_uniform();
      s.kind = r < 0.72f ? 0 : r < 0.84f ? 1 : r < 0.93f ? 2 : 3;
      s.height = s.kind == 0 ? u(6.0f, 22.0f) : s.kind == 2 ? u(1.2f, 3.0f) : u(1.2f, 2.2f);
      const int palette = pick(5);
      switch (palette) {
        case 0: s.colour = {u(150, 210), u(140, 190), u(110, 160)}; break;  // sandstone
        case 1: s.colour = {u(120, 170), u(60, 90), u(50, 75)}; break;      // brick
        case 2: s.colour = grey(u(110, 210)); break;                         // concrete / plaster
        case 3: s.colour = {u(190, 235), u(185, 230), u(170, 215)}; break;  // white
        default: s.colour = {u(90, 140), u(100, 140), u(110, 150)}; break;  // blue-grey
      }
      s.brick = palette == 1 || chance(0.2f);
      s.win_dx = u(2.4f, 4.5f);
      s.win_w = u(0.35f, 0.65f);
      s.win_h = u(0.35f, 0.6f);
      s.tex = rng_.next_u32();
      segs.push_back(s);
      z = s.z1;
    }
  }

  // Facade pixel on one side (sign −1 left, +1 right): fills label/colour and returns true.
  bool facade(int x, int y, float side, float dist, const std::vector<Segment>& segs, uint8_t& l, Rgb& c) const {
    const float ppm = (float(x) + 0.5f - vx_) * side / dist;
    if (ppm <= 0) return false;
    const float z = z0_ * ppm_b_ / ppm;
    const Segment* seg = nullptr;
    for (const Segment& s : segs)
      if (z >= s.z0 && z < s.z1) {
        seg = &s;
        break;
      }
    if (!seg) return false;
    const float yb = hy_ + (float(H_) - hy_) * ppm / ppm_b_;
    const float v = (yb - (float(y) + 0.5f)) / ppm;  // metres above ground
    if (v < 0 || v > seg->height) return false;
    if (seg->kind == 1) return false;
    const float along = z;
    if (seg->kind == 3) {  // fence: vertical bars 0.12 m every 0.5 m, a top rail; see-through between
      const bool bar = frac(along / 0.5f) < 0.3f || v > seg->height - 0.15f || std::fabs(v - 0.4f) < 0.06f;
      if (!bar) return false;
      l = id::fence;
      c = Rgb{90, 85, 75} * (0.8f + 0.4f * hashf(int(along * 2), 0, seg->tex));
      c = mix(c, sky_low_, haze(z));
      return true;
    }
    if (seg->kind == 2) {  // low concrete wall with panel joints
      l = id::wall;
      const float joint = frac(along / 3.0f) < 0.03f ? 0.7f : 1.0f;
      c = seg->colour * (joint * (0.85f + 0.2f * fbm(along * 2, v * 2, seg->tex, 2)));
      c = mix(c, sky_low_, haze(z));
      return true;
    }
    l = id::building;
    Rgb col = seg->colour * (0.9f + 0.2f * fbm(along * 0.5f, v * 0.5f, seg->tex, 2));
    if (seg->brick && ppm > 8.0f) {
      const float row = v / 0.25f;
      const float off = (int(std::floor(row)) & 1) ? 0.25f : 0.0f;
      if (frac(row) < 0.12f || frac(along / 0.5f + off) < 0.06f) col = col * 0.8f;
    }
    // Windows on each floor (3.2 m) above the ground floor; a shop window band at street level.
    const float floor_v = (v - 1.0f) / 3.2f;
    const float fx = frac(along / seg->win_dx), fy = frac(floor_v);
    const bool upper = v > 3.2f && v < seg->height - 1.0f;
    if (upper && std::fabs(fx - 0.5f) < seg->win_w * 0.5f && std::fabs(fy - 0.5f) < seg->win_h * 0.5f) {
      const float refl = vnoise(along * 0.3f, v * 0.3f, seg->tex + 7);
      col = mix(Rgb{35, 45, 60}, sky_low_, 0.15f + 0.4f * refl);
    } else if (v > 0.3f && v < 2.6f && frac(along / 7.0f) < 0.6f && (seg->tex & 1u)) {
      col = mix(Rgb{30, 35, 40}, sky_low_, 0.25f * vnoise(along, v, seg->tex + 9));
    }
    c = mix(col * light_, sky_low_, haze(z));
    return true;
  }

  void background() {
    const float cloud_scale = u(0.004f, 0.012f) * 512.0f / float(W_);
    const float cloudiness = overcast_ ? u(0.1f, 0.3f) : u(0.0f, 0.6f);
    for (int y = 0; y < H_; ++y) {
      for (int x = 0; x < W_; ++x) {
        uint8_t l = id::sky;
        Rgb c;
        if (facade(x, y, -1.0f, face_l_, seg_l_, l, c) || facade(x, y, 1.0f, face_r_, seg_r_, l, c)) {
          c_.put(x, y, l, c);
          continue;
        }
        const float fy = float(y) + 0.5f;
        if (fy > hy_ + 0.5f) {
          ground(x, y, l, c);
        } else {
          // Skyline at the end of the street, else sky with clouds.
          const int block = int(float(x) / (float(W_) * 0.04f));
          const float sh = skyline_h_ * (0.3f + 1.4f * hashf(block, 0, tex_));
          if (skyline_ && fy > hy_ - sh && hashf(block, 1, tex_) < 0.8f) {
            l = id::building;
            c = mix(Rgb{110, 115, 125} * (0.9f + 0.2f * hashf(block, 2, tex_)), sky_low_, 0.55f);
          } else {
            const float t = std::clamp(fy / std::max(hy_, 1.0f), 0.0f, 1.0f);
            c = mix(sky_top_, sky_low_, t);
            const float cl = fbm(float(x) * cloud_scale, float(y) * cloud_scale * 2.0f, tex_ + 3, 4);
            const float cover = std::clamp((cl - (1.0f - cloudiness)) * 3.0f, 0.0f, 1.0f);
            c = mix(c, grey(235) * (0.85f + 0.15f * cl), cover);
            l = id::sky;
          }
        }
        c_.put(x, y, l, c);
      }
    }
  }

  void ground(int x, int y, uint8_t& l, Rgb& c) const {
    const float ppm = ppm_at_row(float(y) + 0.5f);
    const float X = (float(x) + 0.5f - vx_) / ppm, Z = z0_ * ppm_b_ / ppm;
    const float ax = std::fabs(X);
    const bool left = X < 0;
    const float road = left ? road_l_ : road_r_, side = left ? side_l_ : side_r_;
    const bool parking = left ? parking_l_ : parking_r_;
    const float detail = std::min(1.0f, ppm / 12.0f);  // fine texture fades with distance
    const int px = x, py = y;
    if (ax < road) {
      if (parking && ax > road - 2.2f) {  // cobbled parking strip (void in the 19 classes)
        l = id::parking;
        const float cx = X / 0.18f, cz = Z / 0.18f;
        const float e = std::min(frac(cx), frac(cz));
        c = grey(road_base_ + 25) * (e < 0.15f ? 0.75f : 1.0f + 0.15f * (hashf(int(cx), int(cz), tex_) - 0.5f));
      } else {
        l = id::road;
        float v = road_base_ * (0.9f + 0.2f * fbm(X * 0.5f, Z * 0.25f, tex_ + 11, 3));
        v += detail * 10.0f * white(px, py, tex_ + 12);
        c = Rgb{v + road_tint_.r, v + road_tint_.g, v + road_tint_.b};
        // Lane markings: dashed centre line, solid edge lines, an occasional crosswalk.
        const float centre = (road_r_ - road_l_) * 0.5f;
        const bool dash = std::fabs(X - centre) < 0.08f && frac(Z / 6.0f) < 0.5f;
        const bool edge = std::fabs(ax - (road - 0.3f)) < 0.07f;
        const bool zebra = crosswalk_z_ > 0 && Z > crosswalk_z_ && Z < crosswalk_z_ + 3.0f && frac(X / 1.0f) < 0.5f;
        if (dash || edge || zebra) c = grey(215 + 10 * white(px, py, tex_ + 13));
        // Tyre tracks: darker bands in each lane.
        if (std::fabs(frac((X - centre) / 1.7f) - 0.5f) < 0.12f) c = c * 0.93f;
      }
    } else if (ax < road + side) {
      l = id::sidewalk;
      if (ax < road + 0.18f) {
        c = side_base_ * 1.15f;  // curb
      } else {
        const float tx = X / tile_, tz = Z / tile_;
        const float g = std::min(frac(tx), frac(tz));
        const float tile_var = 0.9f + 0.2f * hashf(int(std::floor(tx)), int(std::floor(tz)), tex_ + 21);
        c = side_base_ * (tile_var * (g < 0.06f * (1.0f + 1.0f / detail) ? 0.72f : 1.0f));
        c = c + grey(detail * 6.0f * white(px, py, tex_ + 22));
      }
    } else {
      // Grass strip (terrain): smooth, blotchy green-brown; beyond the facade line: ground.
      const float face = left ? face_l_ : face_r_;
      if (ax < face || true) {
        l = id::terrain;
        const float n = fbm(X * 0.8f, Z * 0.4f, tex_ + 31, 3);
        c = mix(grass_, Rgb{120, 105, 70}, std::clamp(n * 1.6f - 0.5f, 0.0f, 1.0f));
        c = c * (0.85f + 0.3f * n) + grey(detail * 4.0f * white(px, py, tex_ + 32));
      }
    }
    // Shadows cast by the facades (sun from one side), darker and bluer.
    if ((left && ax > face_l_ - shadow_l_) || (!left && ax > face_r_ - shadow_r_)) c = Rgb{c.r * 0.55f, c.g * 0.58f, c.b * 0.68f};
    c = mix(c * light_, sky_low_, haze(Z));
  }

  // --------------------------------------------------------------------------------------------
  // Objects
  // --------------------------------------------------------------------------------------------

  struct Obj {
    float z, X;
    int kind;
    uint32_t tex;
    float p0, p1;
  };
  enum Kind { kTree, kPole, kCar, kTruck, kBus, kPerson, kRider, kStatic, kDynamic, kHedge, kTram, kMotorbike };

  void rect(float x0, float y0, float x1, float y1, uint8_t l, Rgb c, float z, uint32_t tex, float tex_amp = 8.0f) {
    const int ix0 = std::max(0, int(std::floor(x0))), ix1 = std::min(W_ - 1, int(std::ceil(x1)) - 1);
    const int iy0 = std::max(0, int(std::floor(y0))), iy1 = std::min(H_ - 1, int(std::ceil(y1)) - 1);
    const float h = haze(z);
    for (int y = iy0; y <= iy1; ++y)
      for (int x = ix0; x <= ix1; ++x) c_.put(x, y, l, mix((c + grey(tex_amp * white(x, y, tex))) * light_, sky_low_, h));
  }
  void ellipse(float cx, float cy, float rx, float ry, uint8_t l, Rgb c, float z, uint32_t tex, float tex_amp = 8.0f) {
    const int ix0 = std::max(0, int(std::floor(cx - rx))), ix1 = std::min(W_ - 1, int(std::ceil(cx + rx)));
    const int iy0 = std::max(0, int(std::floor(cy - ry))), iy1 = std::min(H_ - 1, int(std::ceil(cy + ry)));
    const float h = haze(z);
    for (int y = iy0; y <= iy1; ++y)
      for (int x = ix0; x <= ix1; ++x) {
        const float dx = (float(x) + 0.5f - cx) / std::max(rx, 0.5f), dy = (float(y) + 0.5f - cy) / std::max(ry, 0.5f);
        if (dx * dx + dy * dy <= 1.0f) c_.put(x, y, l, mix((c + grey(tex_amp * white(x, y, tex))) * light_, sky_low_, h));
      }
  }
  void line(float x0, float y0, float x1, float y1, float width, uint8_t l, Rgb c, float z, uint32_t tex) {
    const int n = int(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0))) + 1;
    const float r = std::max(0.5f, width * 0.5f);
    for (int i = 0; i <= n; ++i) {
      const float t = float(i) / float(n);
      rect(x0 + (x1 - x0) * t - r, y0 + (y1 - y0) * t - r, x0 + (x1 - x0) * t + r, y0 + (y1 - y0) * t + r, l, c, z, tex);
    }
  }

  void tree(const Obj& o, float x, float yb, float ppm) {
    const float trunk_h = o.p0, crown = o.p1;
    rect(x - 0.15f * ppm, yb - trunk_h * ppm, x + 0.15f * ppm, yb, id::vegetation, Rgb{85, 65, 45}, o.z, o.tex, 10);
    const float cx = x, cy = yb - (trunk_h + crown * 0.8f) * ppm, r = crown * ppm;
    const int ix0 = std::max(0, int(cx - 1.3f * r)), ix1 = std::min(W_ - 1, int(cx + 1.3f * r));
    const int iy0 = std::max(0, int(cy - 1.3f * r)), iy1 = std::min(H_ - 1, int(cy + 1.3f * r));
    const float h = haze(o.z);
    const float leaf_px = std::max(1.0f, 0.12f * ppm);  // leaf clusters ≈ 12 cm
    for (int y = iy0; y <= iy1; ++y)
      for (int x2 = ix0; x2 <= ix1; ++x2) {
        const float dx = (float(x2) - cx) / r, dy = (float(y) - cy) / r;
        const float edge = 0.75f + 0.5f * vnoise(float(x2) / (0.3f * r + 1), float(y) / (0.3f * r + 1), o.tex);
        if (dx * dx + dy * dy > edge * edge) continue;
        const float leaf = vnoise(float(x2) / leaf_px, float(y) / leaf_px, o.tex + 1);
        if (leaf < 0.12f && dx * dx + dy * dy > 0.3f) continue;  // holes: the background shows through
        Rgb c = leaf_ * (0.55f + 0.9f * leaf) + Rgb{30 * hashf(x2, y, o.tex + 2), 25 * hashf(x2, y, o.tex + 3), 0};
        c = c * (1.1f - 0.4f * std::clamp(dy + 0.5f, 0.0f, 1.0f));  // lit from above
        c_.put(x2, y, id::vegetation, mix(c * light_, sky_low_, h));
      }
  }

  void hedge(const Obj& o, float x, float yb, float ppm) {
    const float w = o.p0 * ppm, h = o.p1 * ppm;
    const float leaf_px = std::max(1.0f, 0.1f * ppm);
    for (int y = std::max(0, int(yb - h)); y < std::min(H_, int(yb)); ++y)
      for (int x2 = std::max(0, int(x - w / 2)); x2 < std::min(W_, int(x + w / 2)); ++x2) {
        const float leaf = vnoise(float(x2) / leaf_px, float(y) / leaf_px, o.tex);
        Rgb c = leaf_ * (0.6f + 0.8f * leaf) + Rgb{20 * hashf(x2, y, o.tex + 1), 20 * hashf(x2, y, o.tex + 2), 0};
        c_.put(x2, y, id::vegetation, mix(c * light_, sky_low_, haze(o.z)));
      }
  }

  void pole(const Obj& o, float x, float yb, float ppm) {
    const float h = o.p0, w = std::max(1.0f, 0.14f * ppm);
    rect(x - w / 2, yb - h * ppm, x + w / 2, yb, id::pole, grey(120 + 40 * hashf(1, 2, o.tex)), o.z, o.tex, 6);
    const int attach = int(o.p1);
    const float top = yb - h * ppm;
    if (attach == 1) {  // traffic sign: disc, triangle-ish or rectangle in sign colours
      const float s = 0.45f * ppm;
      const int shape = int(o.tex % 3u);
      const Rgb col = (o.tex >> 3) % 3 == 0 ? Rgb{200, 30, 30} : (o.tex >> 3) % 3 == 1 ? Rgb{30, 70, 180} : Rgb{230, 190, 20};
      if (shape == 0) {
        ellipse(x, top + s, s, s, id::traffic_sign, col, o.z, o.tex, 5);
        ellipse(x, top + s, s * 0.65f, s * 0.65f, id::traffic_sign, grey(230), o.z, o.tex, 5);
      } else if (shape == 1) {
        for (int i = 0; i < int(2 * s) + 1; ++i) {
          const float half = s * float(i) / (2 * s);
          rect(x - half, top + float(i), x + half, top + float(i) + 1, id::traffic_sign, col, o.z, o.tex, 5);
        }
      } else {
        rect(x - 1.4f * s, top, x + 1.4f * s, top + 1.2f * s, id::traffic_sign, col, o.z, o.tex, 5);
      }
    } else if (attach == 2) {  // traffic light: dark housing, one lit lamp
      const float w2 = 0.32f * ppm, h2 = 0.9f * ppm;
      rect(x - w2 / 2, top, x + w2 / 2, top + h2, id::traffic_light, Rgb{30, 35, 30}, o.z, o.tex, 4);
      const int lit = int((o.tex >> 5) % 3u);
      const Rgb lamp[3] = {{255, 40, 30}, {255, 190, 30}, {40, 255, 120}};
      for (int i = 0; i < 3; ++i)
        ellipse(x, top + h2 * (0.18f + 0.32f * float(i)), w2 * 0.3f, w2 * 0.3f, id::traffic_light,
                i == lit ? lamp[i] : lamp[i] * 0.25f, o.z, o.tex, 2);
    } else if (attach == 3) {  // street lamp arm (pole)
      line(x, top, x + 1.2f * ppm * (o.X < 0 ? 1.0f : -1.0f), top, std::max(1.0f, 0.08f * ppm), id::pole, grey(130), o.z, o.tex);
    }
  }

  void vehicle(const Obj& o, float x, float yb, float ppm, int kind) {
    const float w = (kind == kCar ? 1.8f : 2.5f) * ppm;
    const float h = (kind == kCar ? 1.45f : kind == kTruck ? 3.2f : 3.1f) * ppm;
    const uint8_t l = kind == kCar ? id::car : kind == kTruck ? id::truck : id::bus;
    const Rgb palette[7] = {{200, 200, 205}, {25, 25, 30}, {150, 20, 25}, {30, 50, 120}, {110, 110, 115}, {230, 230, 225}, {60, 90, 60}};
    const Rgb body = kind == kBus ? Rgb{200, 170, 30} * (0.7f + 0.4f * hashf(0, 1, o.tex)) : palette[o.tex % 7u];
    // Shadow on the road (stays road): darken a band under the vehicle.
    for (int y = int(yb); y < std::min(H_, int(yb + 0.12f * ppm) + 1); ++y)
      for (int x2 = std::max(0, int(x - w * 0.55f)); x2 < std::min(W_, int(x + w * 0.55f)); ++x2) {
        const size_t i = size_t(y) * size_t(W_) + size_t(x2);
        c_.rgb[i] = c_.rgb[i] * 0.45f;
      }
    // Wheels, body, cabin with windows, lights.
    rect(x - w * 0.48f, yb - 0.35f * ppm, x - w * 0.3f, yb, l, grey(20), o.z, o.tex, 4);
    rect(x + w * 0.3f, yb - 0.35f * ppm, x + w * 0.48f, yb, l, grey(20), o.z, o.tex, 4);
    if (kind == kCar) {
      rect(x - w / 2, yb - 0.85f * ppm, x + w / 2, yb - 0.22f * ppm, l, body, o.z, o.tex, 6);
      rect(x - w * 0.4f, yb - h, x + w * 0.4f, yb - 0.85f * ppm, l, body * 0.95f, o.z, o.tex, 6);
      rect(x - w * 0.34f, yb - h + 0.08f * ppm, x + w * 0.34f, yb - 0.9f * ppm, l, mix(Rgb{20, 25, 35}, sky_low_, 0.2f), o.z, o.tex, 4);
      rect(x - w / 2, yb - 0.75f * ppm, x - w * 0.38f, yb - 0.6f * ppm, l, Rgb{180, 20, 20}, o.z, o.tex, 3);
      rect(x + w * 0.38f, yb - 0.75f * ppm, x + w / 2, yb - 0.6f * ppm, l, Rgb{180, 20, 20}, o.z, o.tex, 3);
      rect(x - w * 0.15f, yb - 0.5f * ppm, x + w * 0.15f, yb - 0.38f * ppm, l, grey(220), o.z, o.tex, 3);  // plate
    } else if (kind == kTruck) {
      rect(x - w / 2, yb - h, x + w / 2, yb - 0.3f * ppm, l, grey(170 + 50 * hashf(3, 3, o.tex)), o.z, o.tex, 5);
      for (float v = 0.5f; v < 3.0f; v += 0.5f) rect(x - w / 2, yb - v * ppm, x + w / 2, yb - v * ppm + std::max(1.0f, 0.04f * ppm), l, grey(120), o.z, o.tex, 3);
    } else {
      rect(x - w / 2, yb - h, x + w / 2, yb - 0.3f * ppm, l, body, o.z, o.tex, 5);
      rect(x - w * 0.45f, yb - h + 0.3f * ppm, x + w * 0.45f, yb - h + 1.3f * ppm, l, Rgb{25, 35, 45}, o.z, o.tex, 4);
      rect(x - w * 0.3f, yb - 0.9f * ppm, x + w * 0.3f, yb - 0.5f * ppm, l, body * 0.6f, o.z, o.tex, 4);
    }
  }

  void person(const Obj& o, float x, float yb, float ppm, uint8_t l, float height) {
    const float s = height * ppm;
    const Rgb shirt{40 + 200 * hashf(0, 0, o.tex), 40 + 200 * hashf(1, 0, o.tex), 40 + 200 * hashf(2, 0, o.tex)};
    const Rgb trousers = hashf(3, 0, o.tex) < 0.5f ? Rgb{40, 45, 70} : grey(50 + 60 * hashf(4, 0, o.tex));
    const Rgb skin{200 - 100 * hashf(5, 0, o.tex), 160 - 90 * hashf(5, 0, o.tex), 130 - 80 * hashf(5, 0, o.tex)};
    const float lw = std::max(1.0f, 0.07f * s);
    const float stride = 0.08f * s * (hashf(6, 0, o.tex) - 0.5f) * 2.0f;
    line(x - 0.05f * s, yb - 0.48f * s, x - 0.05f * s - stride, yb - lw / 2, lw, l, trousers, o.z, o.tex);
    line(x + 0.05f * s, yb - 0.48f * s, x + 0.05f * s + stride, yb - lw / 2, lw, l, trousers, o.z, o.tex);
    rect(x - 0.13f * s, yb - 0.82f * s, x + 0.13f * s, yb - 0.46f * s, l, shirt, o.z, o.tex, 8);
    line(x - 0.14f * s, yb - 0.8f * s, x - 0.17f * s, yb - 0.5f * s, std::max(1.0f, 0.05f * s), l, shirt * 0.9f, o.z, o.tex);
    line(x + 0.14f * s, yb - 0.8f * s, x + 0.17f * s, yb - 0.5f * s, std::max(1.0f, 0.05f * s), l, shirt * 0.9f, o.z, o.tex);
    ellipse(x, yb - 0.9f * s, 0.065f * s, 0.08f * s, l, skin, o.z, o.tex, 5);
    if (hashf(7, 0, o.tex) < 0.5f) ellipse(x, yb - 0.95f * s, 0.07f * s, 0.04f * s, l, grey(30), o.z, o.tex, 4);  // hair
  }

  // A tram (Cityscapes "train"): long, tall, a continuous window band, a pantograph pole (train).
  void tram(const Obj& o, float x, float yb, float ppm) {
    const float w = 2.6f * ppm, h = 3.5f * ppm;
    const Rgb body = (o.tex & 1u) ? Rgb{200, 40, 35} : Rgb{225, 225, 215};
    rect(x - w / 2, yb - h, x + w / 2, yb - 0.15f * ppm, id::train, body, o.z, o.tex, 5);
    rect(x - w * 0.46f, yb - h + 0.35f * ppm, x + w * 0.46f, yb - h + 1.5f * ppm, id::train, Rgb{30, 38, 48}, o.z, o.tex, 4);
    rect(x - w / 2, yb - 0.9f * ppm, x + w / 2, yb - 0.7f * ppm, id::train, body * 0.6f, o.z, o.tex, 3);
    line(x, yb - h, x + 0.4f * ppm, yb - h - 0.9f * ppm, std::max(1.0f, 0.05f * ppm), id::train, grey(40), o.z, o.tex);
    // Rails in the road surface (road).
    for (float dx : {-0.72f, 0.72f})
      for (int y = int(yb); y < H_; ++y) {
        const float p = ppm_at_row(float(y) + 0.5f);
        const int xr = int(vx_ + (o.X + dx) * p);
        if (xr >= 0 && xr < W_ && c_.lab[size_t(y) * size_t(W_) + size_t(xr)] == id::road)
          c_.rgb[size_t(y) * size_t(W_) + size_t(xr)] = grey(150);
      }
  }

  // A motorcycle (side view) with its rider.
  void motorbike(const Obj& o, float x, float yb, float ppm) {
    const float r = 0.3f * ppm, wb = 1.4f * ppm;
    const Rgb paint = (o.tex & 2u) ? Rgb{30, 30, 35} : Rgb{170, 25, 20};
    ellipse(x - wb / 2, yb - r, r, r, id::motorcycle, grey(25), o.z, o.tex, 4);
    ellipse(x + wb / 2, yb - r, r, r, id::motorcycle, grey(25), o.z, o.tex, 4);
    ellipse(x - wb / 2, yb - r, r * 0.45f, r * 0.45f, id::motorcycle, grey(120), o.z, o.tex, 4);
    ellipse(x + wb / 2, yb - r, r * 0.45f, r * 0.45f, id::motorcycle, grey(120), o.z, o.tex, 4);
    rect(x - wb * 0.35f, yb - r - 0.45f * ppm, x + wb * 0.3f, yb - r + 0.05f * ppm, id::motorcycle, paint, o.z, o.tex, 6);
    line(x + wb * 0.3f, yb - r - 0.4f * ppm, x + wb / 2, yb - r, std::max(1.0f, 0.05f * ppm), id::motorcycle, grey(60), o.z, o.tex);
    person(o, x - 0.1f * ppm, yb - r - 0.3f * ppm, ppm, id::rider, 1.4f);
  }

  void rider(const Obj& o, float x, float yb, float ppm) {
    const float r = 0.34f * ppm, wb = 1.05f * ppm;  // wheel radius, wheelbase (side view)
    const float lw = std::max(1.0f, 0.04f * ppm);
    const Rgb frame = hashf(0, 9, o.tex) < 0.5f ? Rgb{20, 20, 25} : Rgb{160, 30, 30};
    for (float cx : {x - wb / 2, x + wb / 2}) {
      const int n = std::max(12, int(6 * r));
      for (int i = 0; i < n; ++i) {
        const float a = 6.2831853f * float(i) / float(n), b = 6.2831853f * float(i + 1) / float(n);
        line(cx + r * std::cos(a), yb - r + r * std::sin(a), cx + r * std::cos(b), yb - r + r * std::sin(b), lw, id::bicycle, grey(25), o.z, o.tex);
      }
    }
    line(x - wb / 2, yb - r, x, yb - r, lw, id::bicycle, frame, o.z, o.tex);
    line(x, yb - r, x - 0.1f * ppm, yb - r - 0.5f * ppm, lw, id::bicycle, frame, o.z, o.tex);
    line(x - 0.1f * ppm, yb - r - 0.5f * ppm, x + wb / 2, yb - r, lw, id::bicycle, frame, o.z, o.tex);
    line(x + wb / 2, yb - r, x + wb / 2 - 0.1f * ppm, yb - r - 0.7f * ppm, lw, id::bicycle, frame, o.z, o.tex);
    Obj p = o;
    person(p, x - 0.05f * ppm, yb - r - 0.25f * ppm, ppm, id::rider, 1.45f);
  }

  void objects() {
    std::vector<Obj> objs;
    auto add = [&](float z, float X, int kind, float p0 = 0, float p1 = 0) {
      objs.push_back({z, X, kind, rng_.next_u32(), p0, p1});
    };
    const float zmin = z0_ * 0.9f;
    for (float side : {-1.0f, 1.0f}) {
      const float road = side < 0 ? road_l_ : road_r_, sw = side < 0 ? side_l_ : side_r_;
      const float terr = side < 0 ? terr_l_ : terr_r_, zmax = side < 0 ? z_max_l_ : z_max_r_;
      if (chance(0.65f)) {  // a row of trees
        const float spacing = u(7.0f, 16.0f);
        const float X = side * (terr > 0 ? road + sw + terr * 0.5f : road + sw * 0.75f);
        for (float z = zmin + u(0.0f, spacing); z < zmax * 1.3f; z += spacing * u(0.7f, 1.3f))
          add(z, X + u(-0.3f, 0.3f), kTree, u(2.0f, 3.5f), u(1.6f, 3.2f));
      }
      if (chance(0.3f)) {
        const float z = u(zmin, 40.0f);
        add(z, side * (road + sw + terr - 0.6f), kHedge, u(3.0f, 9.0f), u(0.8f, 1.4f));
      }
      const int poles = 1 + pick(5);
      for (int i = 0; i < poles; ++i) add(u(zmin, 60.0f), side * (road + 0.45f), kPole, u(3.0f, 6.5f), float(pick(4)));
      const int people = pick(8);
      for (int i = 0; i < people; ++i) add(u(zmin, 45.0f), side * (road + u(0.4f, sw - 0.3f)), kPerson, u(1.55f, 1.95f));
      const int clutter = pick(3);
      for (int i = 0; i < clutter; ++i) add(u(zmin, 40.0f), side * (road + sw - 0.4f), chance(0.7f) ? kStatic : kDynamic, u(0.4f, 0.9f), u(0.5f, 1.2f));
      const int parked = pick(6);
      for (int i = 0; i < parked; ++i) add(u(zmin * 1.1f, 60.0f), side * (road - 1.2f), kCar);
    }
    const int cars = 1 + pick(6);
    for (int i = 0; i < cars; ++i) add(z0_ * std::exp(u(0.1f, 2.6f)), u(-road_l_ + 1.2f, road_r_ - 1.2f), kCar);
    if (chance(0.25f)) add(u(z0_ * 2.0f, 70.0f), u(-road_l_ + 1.5f, road_r_ - 1.5f), chance(0.5f) ? kTruck : kBus);
    if (chance(0.15f)) add(u(z0_ * 2.0f, 60.0f), u(-1.0f, 1.0f), kTram);
    if (chance(0.3f)) add(u(z0_ * 1.2f, 40.0f), (chance(0.5f) ? -1.0f : 1.0f) * u(0.8f, 3.0f), kMotorbike);
    const int riders = chance(0.4f) ? 1 + pick(2) : 0;
    for (int i = 0; i < riders; ++i) add(u(z0_ * 1.2f, 40.0f), (chance(0.5f) ? -1.0f : 1.0f) * u(0.5f, 2.5f), kRider);
    if (chance(0.15f)) add(u(z0_ * 1.2f, 20.0f), u(-road_l_, road_r_), kPerson, u(1.55f, 1.95f));  // crossing

    std::sort(objs.begin(), objs.end(), [](const Obj& a, const Obj& b) { return a.z > b.z; });  // far first
    for (const Obj& o : objs) {
      const float yb = row_at_depth(o.z), ppm = ppm_at_depth(o.z);
      const float x = vx_ + o.X * ppm;
      if (x < -8 * ppm || x > float(W_) + 8 * ppm) continue;
      switch (o.kind) {
        case kTree: tree(o, x, yb, ppm); break;
        case kHedge: hedge(o, x, yb, ppm); break;
        case kPole: pole(o, x, yb, ppm); break;
        case kCar:
        case kTruck:
        case kBus: vehicle(o, x, yb, ppm, o.kind); break;
        case kPerson: person(o, x, yb, ppm, id::person, o.p0); break;
        case kRider: rider(o, x, yb, ppm); break;
        case kTram: tram(o, x, yb, ppm); break;
        case kMotorbike: motorbike(o, x, yb, ppm); break;
        case kStatic:
          rect(x - o.p0 * ppm / 2, yb - o.p1 * ppm, x + o.p0 * ppm / 2, yb, id::static_, Rgb{60, 80, 60} * (0.6f + 0.8f * hashf(0, 0, o.tex)), o.z, o.tex, 8);
          break;
        case kDynamic:
          rect(x - o.p0 * ppm / 2, yb - o.p1 * ppm, x + o.p0 * ppm / 2, yb, id::dynamic, Rgb{150, 120, 90} * (0.6f + 0.8f * hashf(0, 0, o.tex)), o.z, o.tex, 8);
          break;
      }
    }
    // Ego vehicle: the bonnet at the bottom of the frame (void), in some images.
    if (chance(0.5f)) {
      const float hood = float(H_) * u(0.05f, 0.12f);
      const Rgb paint = Rgb{u(10, 80), u(10, 80), u(10, 90)};
      for (int y = 0; y < H_; ++y)
        for (int x = 0; x < W_; ++x) {
          const float t = (float(x) + 0.5f) / float(W_) - 0.5f;
          const float top = float(H_) - hood * (1.0f - 1.2f * t * t);
          if (float(y) + 0.5f >= top) c_.put(x, y, id::ego_vehicle, paint + sky_low_ * (0.25f * (1.0f - (float(y) - top) / hood)));
        }
    }
  }

  void finish(SynthScene& out) {
    const float noise = u(2.0f, 7.0f);
    const Rgb wb{u(0.92f, 1.08f), u(0.95f, 1.05f), u(0.9f, 1.1f)};
    const float contrast = u(0.85f, 1.15f);
    const uint32_t nt = rng_.next_u32();
    out.image.height = out.label_ids.height = H_;
    out.image.width = out.label_ids.width = W_;
    out.image.channels = 3;
    out.label_ids.channels = 1;
    out.image.pixels.resize(size_t(H_) * size_t(W_) * 3);
    out.label_ids.pixels = c_.lab;
    for (int y = 0; y < H_; ++y)
      for (int x = 0; x < W_; ++x) {
        const size_t i = size_t(y) * size_t(W_) + size_t(x);
        const float dx = (float(x) / float(W_) - 0.5f), dy = (float(y) / float(H_) - 0.5f);
        const float vignette = 1.0f - 0.25f * (dx * dx + dy * dy);
        const Rgb c = c_.rgb[i];
        const float ch[3] = {c.r * wb.r, c.g * wb.g, c.b * wb.b};
        for (int k = 0; k < 3; ++k) {
          float v = (ch[k] - 128.0f) * contrast + 128.0f;
          v = v * vignette + noise * white(x * 3 + k, y, nt);
          out.image.pixels[3 * i + size_t(k)] = uint8_t(std::clamp(int(std::lround(v)), 0, 255));
        }
      }
  }

  PhiloxStream rng_;
  int H_, W_;
  Canvas c_;
  uint32_t tex_;
  float hy_, vx_, ppm_b_, z0_;
  float road_l_, road_r_, side_l_, side_r_, terr_l_, terr_r_, face_l_, face_r_;
  bool parking_l_, parking_r_;
  float crosswalk_z_;
  float light_;
  bool overcast_;
  Rgb sky_top_, sky_low_;
  float haze_z_, road_base_;
  Rgb road_tint_, side_base_;
  float tile_;
  Rgb grass_, leaf_;
  float shadow_l_, shadow_r_, z_max_l_, z_max_r_;
  std::vector<Segment> seg_l_, seg_r_;
  bool skyline_;
  float skyline_h_;
};

}  // namespace

SynthScene synth_scene(uint64_t seed, uint64_t index, int height, int width) {
  RDD_CHECK(height >= 16 && width >= 16 && height <= 8192 && width <= 8192, "synth: image size ", height, "x", width,
            " out of range (16..8192 per side)");
  Scene scene(seed, index, height, width);
  return scene.render();
}

std::string synth_city(const std::string& split, int index) {
  static const char* train_cities[] = {"synthaachen", "synthbochum", "synthcologne", "synthdresden"};
  static const char* val_cities[] = {"synthfrankfurt", "synthlindau"};
  if (split == "train") return train_cities[index % 4];
  return val_cities[index % 2];
}

std::string synth_base_name(const std::string& split, int index) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s_%06d_%06d", synth_city(split, index).c_str(), index / 100, 19 + index % 100);
  return buf;
}

SynthSummary write_synthetic_cityscapes(const SynthOptions& o) {
  namespace fs = std::filesystem;
  RDD_CHECK(!o.out.empty(), "synth: no output folder given");
  RDD_CHECK(o.train >= 0 && o.val >= 0 && o.train + o.val > 0, "synth: nothing to generate (train ", o.train, ", val ",
            o.val, ")");
  SynthSummary sum;
  std::atomic<size_t> bytes{0};
  for (const std::string split : {"train", "val"}) {
    const int n = split == "train" ? o.train : o.val;
    for (int i = 0; i < n && i < 6; ++i) {
      std::error_code ec;
      fs::create_directories(fs::path(o.out) / "leftImg8bit" / split / synth_city(split, i), ec);
      RDD_CHECK(!ec, "synth: cannot create ", (fs::path(o.out) / "leftImg8bit" / split).string(), ": ", ec.message());
      fs::create_directories(fs::path(o.out) / "gtFine" / split / synth_city(split, i), ec);
      RDD_CHECK(!ec, "synth: cannot create ", (fs::path(o.out) / "gtFine" / split).string(), ": ", ec.message());
    }
    // Val scenes use indices far from the train ones so the two splits never share a scene.
    const uint64_t base = split == "train" ? 0 : (uint64_t(1) << 40);
    std::vector<std::string> errors(static_cast<size_t>(n));
    parallel_for(0, n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        try {
          const SynthScene s = synth_scene(o.seed, base + uint64_t(i), o.height, o.width);
          const std::string name = synth_base_name(split, int(i));
          const fs::path img = fs::path(o.out) / "leftImg8bit" / split / synth_city(split, int(i)) / (name + "_leftImg8bit.png");
          const fs::path lab = fs::path(o.out) / "gtFine" / split / synth_city(split, int(i)) / (name + "_gtFine_labelIds.png");
          write_png(img.string(), s.image, o.compression);
          write_png(lab.string(), s.label_ids, 6);
          bytes += fs::file_size(img) + fs::file_size(lab);
        } catch (const std::exception& ex) {
          errors[size_t(i)] = ex.what();
        }
      }
    });
    for (const std::string& e : errors) RDD_CHECK(e.empty(), "synth: ", e);
    (split == "train" ? sum.train : sum.val) = n;
  }
  sum.bytes = bytes.load();
  return sum;
}

}  // namespace rdd::data
