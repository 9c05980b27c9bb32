// Augmentation presets and the evaluation transform: decoded samples (RGB u8, u8 train ids) →
// normalised f32 CHW images and int32 labels with ignore = −1.
//
//   AugmentConfig cfg = augment_preset("cirkd", 512, 1024);
//   PhiloxStream rng = sample_stream(seed, slot);          // one stream per (seed, sample slot)
//   AugmentRecord r = augment_train(sample, cfg, rng, img_chw, labels_hw);
//
// Presets (rdd-method.md §2.1 and reference.md §1):
//   cirkd  the released code's: BGR, 0–255 minus the Caffe mean (104.00698793, 116.66876762,
//          122.67891434), no std; scale factor 0.5 + k/10, k uniform in 0..15 (same in x and y,
//          output size round(size·f) as cv2.resize(fx, fy)); bilinear image (rounded to u8 like cv2 on
//          a u8 image), nearest label; pad bottom/right to the crop with 0 after mean subtraction and
//          ignore; random crop (offsets uniform over every valid position); horizontal flip p = 0.5.
//   mmseg  mmsegmentation's pipeline: RandomResize of the base scale·r (Cityscapes (2048, 1024),
//          ADE20K/VOC (2048, 512)), r ∈ U[0.5, 2.0),
//          keep ratio; RandomCrop with cat_max_ratio 0.75 (up to 10 draws); flip p = 0.5;
//          PhotoMetricDistortion (brightness ±32, contrast and saturation ×[0.5, 1.5], hue ±18, each
//          p = 0.5, contrast before or after the HSV steps); RGB ImageNet mean/std; pad with 0 / ignore.
// Geometry is computed only inside the crop window (resampling the full scaled image and cropping
// gives the same pixels), so a 2× scale of a 2048×1024 image costs no more than the crop.
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "engine/rng.h"

namespace rdd::data {

enum class Preset { cirkd, mmseg };

struct Normalization {
  bool bgr = true;                 // channel 0 of the output is B (cirkd) or R (mmseg)
  float mean[3] = {0, 0, 0};       // in output channel order
  float stdev[3] = {1, 1, 1};      // in output channel order
};

struct AugmentConfig {
  Preset preset = Preset::cirkd;
  int crop_h = 512, crop_w = 1024;
  bool flip = true;
  // mmseg RandomResize: base scale (long, short) and ratio range; RandomCrop's cat_max_ratio.
  int scale_long = 2048, scale_short = 512;
  float ratio_min = 0.5f, ratio_max = 2.0f;
  float cat_max_ratio = 0.75f;
  bool photometric = true;  // mmseg only
  Normalization norm;
};

// "cirkd" or "mmseg"; throws on anything else. `dataset` picks mmseg's RandomResize base scale as its
// configs do: cityscapes (2048, 1024); camvid (960, 720) (the native size; mmseg has no CamVid config);
// voc, ade20k and list (2048, 512). Without a dataset name, a crop at least twice as wide as high
// (512×1024) is taken as Cityscapes, anything else as (2048, 512).
AugmentConfig augment_preset(const std::string& name, int crop_h, int crop_w, const std::string& dataset = "");
Normalization preset_normalization(Preset p);
const char* preset_name(Preset p);

// What a draw did (for tests and logs).
struct AugmentRecord {
  double scale = 1;           // cirkd: the factor; mmseg: the resize factor applied
  int scaled_h = 0, scaled_w = 0;  // size after scaling (before padding)
  int crop_y = 0, crop_x = 0;      // top-left of the crop in the scaled (padded) image
  int crop_tries = 1;              // mmseg cat_max_ratio draws
  bool flipped = false;
};

// The cirkd draws for an image of height × width (scale, crop offsets, flip): what augment_train
// draws from `rng`, without touching pixels (augment_device.h applies them on the GPU).
AugmentRecord plan_cirkd(int height, int width, const AugmentConfig& cfg, PhiloxStream& rng);

// Training transform. out_image: (3, crop_h, crop_w) f32; out_label: (crop_h, crop_w) i32, ignore −1.
AugmentRecord augment_train(const Sample& s, const AugmentConfig& cfg, PhiloxStream& rng, float* out_image,
                            int32_t* out_label);

// Evaluation transform: whole image, normalisation only. out_image: (3, H, W) f32; out_label: (H, W) i32.
void transform_eval(const Sample& s, const Normalization& norm, float* out_image, int32_t* out_label);

// The random stream of one sample slot: independent of workers, batch composition and timing.
PhiloxStream sample_stream(uint64_t seed, uint64_t slot);

// Building blocks (exposed for tests): cv2-style resampling of whole images.
// Bilinear with half-pixel centres (cv2 INTER_LINEAR), source coordinate (d + 0.5)·inv − 0.5, clamped;
// result rounded to u8. `inv_y/x` = source size / destination size (or 1/f for cv2's fx/fy form).
Image resize_bilinear(const Image& src, int out_h, int out_w, double inv_y, double inv_x);
// Nearest (cv2 INTER_NEAREST): source index floor(d·inv), clamped. Never mixes label values.
Image resize_nearest(const Image& src, int out_h, int out_w, double inv_y, double inv_x);

}  // namespace rdd::data
