#include "train/val_images.h"

#include <algorithm>

#include "data/augment.h"
#include "layers/resize.h"
#include "rdd/segmentation_metrics.h"

namespace rdd::train {

namespace {

// Nearest-neighbour shrink of an HWC image to width ≤ max_width (aspect kept).
data::Image shrink(const data::Image& im, int max_width) {
  if (im.width <= max_width) return im;
  const int w = max_width, h = std::max(1, int(int64_t(im.height) * max_width / im.width));
  data::Image out;
  out.height = h;
  out.width = w;
  out.channels = im.channels;
  out.pixels.resize(size_t(h) * size_t(w) * size_t(im.channels));
  for (int y = 0; y < h; ++y) {
    const int sy = int(int64_t(y) * im.height / h);
    for (int x = 0; x < w; ++x) {
      const int sx = int(int64_t(x) * im.width / w);
      for (int c = 0; c < im.channels; ++c)
        out.pixels[(size_t(y) * size_t(w) + size_t(x)) * size_t(im.channels) + size_t(c)] =
            im.row(sy)[size_t(sx) * size_t(im.channels) + size_t(c)];
    }
  }
  return out;
}

// RGB images of equal height side by side, 4 white pixels apart.
data::Image side_by_side(const std::vector<data::Image>& parts) {
  const int gap = 4;
  data::Image out;
  out.height = parts[0].height;
  out.channels = 3;
  for (const data::Image& p : parts) out.width += p.width + (out.width ? gap : 0);
  out.pixels.assign(size_t(out.height) * size_t(out.width) * 3, 255);
  int x0 = 0;
  for (const data::Image& p : parts) {
    for (int y = 0; y < p.height && y < out.height; ++y)
      std::copy(p.row(y), p.row(y) + size_t(p.width) * 3, out.row(y) + size_t(x0) * 3);
    x0 += p.width + gap;
  }
  return out;
}

}  // namespace

std::vector<data::Image> validation_panels(models::SegModel& model, const data::Dataset& ds, const std::string& preset,
                                           Device device, int count, int max_width) {
  std::vector<data::Image> panels;
  const layers::Mode was = model.mode();
  model.set_mode(layers::Mode::eval);
  const data::Normalization norm = data::augment_preset(preset, 8, 8, ds.name).norm;
  for (size_t i = 0; i < ds.size() && int(panels.size()) < count; ++i) {
    const data::Sample s = ds.load(i);
    const int H = s.image.height, W = s.image.width;
    Tensor x = Tensor::empty({1, 3, H, W});  // x: (1, 3, H, W) f32, normalised
    Tensor labels = Tensor::empty({1, H, W}, DType::i32);
    data::transform_eval(s, norm, x.data<float>(), labels.data<int32_t>());
    const Tensor main = model.forward(device.is_cpu() ? x : x.to(device)).main;                  // (1, C, H/8, W/8)
    Tensor ids = argmax_channels(layers::bilinear_resize_forward(main, H, W, /*align_corners=*/true));  // (1, H, W)
    if (!ids.device().is_cpu()) ids = ids.to(Device::cpu());
    const data::Image truth = data::colorize(labels.data<int32_t>(), H, W, ds.palette);
    const data::Image pred = data::colorize(ids.data<int32_t>(), H, W, ds.palette);
    panels.push_back(side_by_side({shrink(s.image, max_width), shrink(truth, max_width), shrink(pred, max_width)}));
  }
  model.set_mode(was);
  return panels;
}

}  // namespace rdd::train
