// Synthetic street scenes in the real Cityscapes layout, so that the whole pipeline (dataset scan,
// labelIds → trainIds mapping, augmentation, training, evaluation) can be demonstrated and tested with
// no download.
//
//   SynthScene s = synth_scene(seed, index, 256, 512);   // RGB image + Cityscapes labelIds (u8)
//   write_synthetic_cityscapes({"out", 200, 50, 256, 512, seed});
//
// A scene is a perspective street: sky with clouds, a skyline, facades with windows on both sides
// (building, with occasional wall and fence segments), a road with lane markings and shadows,
// tiled sidewalks, grass strips (terrain) and trees and hedges (vegetation: green like terrain, but
// leafy), poles with signs and traffic lights (thin and small), cars, trucks, buses and trams, people,
// riders on bicycles and motorcycles, and void classes (ego vehicle, static and dynamic clutter, ground). Colours, textures,
// lighting, haze and sensor noise vary per image; objects occlude each other by depth. Several pairs
// of classes differ mainly by texture or context (road/sidewalk, terrain/vegetation, building/wall,
// car/truck/bus), so a larger model has something to win over a small one.
//
// Deterministic for (seed, index, size); files are written in parallel on the CPU thread pool.
#pragma once

#include <cstdint>
#include <string>

#include "data/image.h"

namespace rdd::data {

struct SynthScene {
  Image image;           // (H, W, 3) RGB
  LabelImage label_ids;  // (H, W) Cityscapes labelIds (0..33, void ids included)
};

SynthScene synth_scene(uint64_t seed, uint64_t index, int height, int width);

struct SynthOptions {
  std::string out;  // dataset root: leftImg8bit/ and gtFine/ are created under it
  int train = 200, val = 50;
  int height = 256, width = 512;
  uint64_t seed = 1;
  int compression = 0;  // PNG level for the images: 0 stored (their noise leaves ~15% to gain), 1..9
};

struct SynthSummary {
  int train = 0, val = 0;
  size_t bytes = 0;  // written
};

SynthSummary write_synthetic_cityscapes(const SynthOptions& o);

// File names the generator uses (Cityscapes naming: <city>_<seq>_<frame>_leftImg8bit.png).
std::string synth_city(const std::string& split, int index);
std::string synth_base_name(const std::string& split, int index);

}  // namespace rdd::data
