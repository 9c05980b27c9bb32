// One output pixel of the cirkd training transform (scale, pad, crop, flip, normalise), shared by
// the CPU and the CUDA kernel so both give the same bits as augment_train (augment.cpp):
//   source coordinate s = (d + 0.5)·inv − 0.5 in double, clamped (cv2 INTER_LINEAR), weights rounded
//   to 11 fractional bits, the 2-tap × 2-tap sum in integers; labels by nearest (floor(d·inv));
//   value (v − mean) / std in float. Device code uses round-to-nearest intrinsics so nothing is fused.
// C++17 (included by a .cu file).
#pragma once

#include <cstdint>

#include "engine/host_device.h"

#if defined(__CUDACC__)
#include <math.h>
#else
#include <cmath>
#endif

namespace rdd::data::pixel {

// One image's job: its u8 source and the drawn parameters.
struct CirkdJob {
  const uint8_t* image;  // (H, W, 3) RGB
  const uint8_t* label;  // (H, W) train ids, 255 ignore
  int H, W;
  int h, w;              // valid window inside the crop (the rest is padding)
  int crop_y, crop_x;
  int flip;
  double inv;            // 1 / scale
};

struct Norm {
  int bgr;
  float mean[3], stdev[3];
};

RDD_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
RDD_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// Bilinear tap of destination index d (absolute, in the scaled image): i0, i1 and the 11-bit weight.
RDD_HD void bilinear_tap(int d, double inv, int src, int& i0, int& i1, int& w11) {
  double s = add_rn(mul_rn(add_rn(double(d), 0.5), inv), -0.5);
  if (s < 0) s = 0;
  const double fl = floor(s);
  int s0 = int(fl);
  float w = float(add_rn(s, -fl));
  if (s0 >= src - 1) {
    s0 = src - 1;
    w = 0.0f;
  }
  i0 = s0;
  i1 = s0 + 1 < src - 1 ? s0 + 1 : src - 1;
  w11 = int(lroundf(w * 2048.0f));
}

RDD_HD int nearest_tap(int d, double inv, int src) {
  const int s = int(floor(mul_rn(double(d), inv)));
  return s < src - 1 ? s : src - 1;
}

// Output pixel (y, xo) of a crop_h × crop_w crop: writes 3 channel values and the label.
RDD_HD void cirkd_pixel(const CirkdJob& j, const Norm& n, int y, int xo, int crop_w, float out[3], int32_t& label) {
  const int x = j.flip ? crop_w - 1 - xo : xo;  // window column (cirkd flips the padded crop)
  if (y >= j.h || x >= j.w) {
    out[0] = out[1] = out[2] = 0.0f;
    label = -1;
    return;
  }
  int y0, y1, wy, x0, x1, wx;
  bilinear_tap(j.crop_y + y, j.inv, j.H, y0, y1, wy);
  bilinear_tap(j.crop_x + x, j.inv, j.W, x0, x1, wx);
  const uint8_t* r0 = j.image + size_t(y0) * size_t(j.W) * 3;
  const uint8_t* r1 = j.image + size_t(y1) * size_t(j.W) * 3;
  int rgb[3];
  for (int c = 0; c < 3; ++c) {
    const int top = int(r0[x0 * 3 + c]) * (2048 - wx) + int(r0[x1 * 3 + c]) * wx;
    const int bot = int(r1[x0 * 3 + c]) * (2048 - wx) + int(r1[x1 * 3 + c]) * wx;
    rgb[c] = (top * (2048 - wy) + bot * wy + (1 << 21)) >> 22;
  }
  const int src_c[3] = {n.bgr ? 2 : 0, 1, n.bgr ? 0 : 2};
  for (int c = 0; c < 3; ++c) out[c] = (float(rgb[src_c[c]]) - n.mean[c]) / n.stdev[c];
  const uint8_t l = j.label[size_t(nearest_tap(j.crop_y + y, j.inv, j.H)) * size_t(j.W) + size_t(nearest_tap(j.crop_x + x, j.inv, j.W))];
  label = l == 255 ? -1 : int32_t(l);
}

}  // namespace rdd::data::pixel
