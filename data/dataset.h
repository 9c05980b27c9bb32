// Datasets: the on-disk layouts of Cityscapes, CamVid, Pascal VOC 2012 (+SBD aug), ADE20K and a generic
// "image label" list file, each with its label convention, class names, palette and class weights.
//
//   DatasetSpec spec{"cityscapes", "/data/cityscapes", "train"};
//   Dataset ds = open_dataset(spec);          // scans the files; throws naming every missing one
//   Sample s = ds.load(17);                    // decoded RGB image + labels mapped to train ids
//
// Inside rdd a label is a train id in [0, num_classes) or ignore. Decoded samples keep labels as u8
// with kIgnoreU8 (255) for ignore (compact for the in-memory cache); batches carry them as int32 with
// ignore = −1 (see augment.h). A raw label value that the dataset's mapping does not know (e.g. 40 in
// a Cityscapes labelIds file) is an error naming the file, the value and where it is.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace rdd::data {

constexpr uint8_t kIgnoreU8 = 255;  // ignore in decoded (u8) label maps
constexpr int32_t kIgnore = -1;     // ignore in int32 label batches

// raw label value (0..255) → train id (≥ 0), kMapIgnore or kMapInvalid.
struct LabelMapping {
  static constexpr int16_t kMapIgnore = -1;
  static constexpr int16_t kMapInvalid = -2;
  std::array<int16_t, 256> table{};
  std::string description;  // "Cityscapes labelIds (0..33, 255)" for error messages
};

struct SampleFiles {
  std::string image;
  std::string label;
  int mapping = 0;  // index into Dataset::mappings
};

// A decoded sample: RGB image (H, W, 3) u8 and train-id labels (H, W) u8 with kIgnoreU8.
struct Sample {
  Image image;
  LabelImage label;
  size_t bytes() const { return image.bytes() + label.bytes(); }
};

struct DatasetSpec {
  std::string kind;             // cityscapes | camvid | voc | ade20k | list
  std::string root;             // dataset folder (for `list`: the list file)
  std::string split = "train";  // train | val | test (ignored for `list`)
  int num_classes = 0;          // `list` only: number of classes (1..255)
  int ignore_value = 255;       // `list` only: the raw label value meaning "ignore" (0..255)
};

class Dataset {
 public:
  std::string name;   // "cityscapes"
  std::string split;  // "train"
  std::string root;
  int num_classes = 0;
  std::vector<std::string> class_names;  // num_classes entries
  Palette palette;                        // num_classes entries
  std::vector<float> class_weights;       // the released code's CE class weights, or empty
  std::vector<LabelMapping> mappings;
  std::vector<SampleFiles> files;

  size_t size() const { return files.size(); }
  // Decodes image i and its label map, maps labels to train ids and checks that both have the same
  // size. Throws naming the file and the problem.
  Sample load(size_t i) const;
  // Raw label values → train ids (u8, kIgnoreU8), checking every value against the mapping.
  LabelImage map_labels(const LabelImage& raw, int mapping, const std::string& file) const;
};

// Scans the dataset's files for a split. With `problems` == nullptr every problem (missing root, list
// or file, empty split) throws, naming all missing files (up to a few, then a count). With `problems`
// given, each problem is appended as one line and the sample is left out; the returned dataset holds the
// samples whose files exist.
Dataset open_dataset(const DatasetSpec& spec, std::vector<std::string>* problems = nullptr);

// The names accepted by DatasetSpec::kind.
const std::vector<std::string>& dataset_kinds();

// Metadata by name (no files needed): class names, palette, class weights.
Dataset dataset_metadata(const std::string& kind, int num_classes = 0);

// Mappings, exposed for tests and tools.
LabelMapping cityscapes_label_ids_mapping();    // labelIds 0..33 (and 255) → 19 trainIds
LabelMapping cityscapes_train_ids_mapping();    // labelTrainIds 0..18, 255 ignore
Palette voc_palette(int n);                      // the Pascal VOC colour map (first n entries)

// Cityscapes labelIds (official cityscapesScripts ids) for the synthetic generator and tests.
namespace cityscapes_id {
enum : uint8_t {
  unlabeled = 0, ego_vehicle = 1, rectification_border = 2, out_of_roi = 3, static_ = 4, dynamic = 5, ground = 6,
  road = 7, sidewalk = 8, parking = 9, rail_track = 10, building = 11, wall = 12, fence = 13, guard_rail = 14,
  bridge = 15, tunnel = 16, pole = 17, polegroup = 18, traffic_light = 19, traffic_sign = 20, vegetation = 21,
  terrain = 22, sky = 23, person = 24, rider = 25, car = 26, truck = 27, bus = 28, caravan = 29, trailer = 30,
  train = 31, motorcycle = 32, bicycle = 33
};
}  // namespace cityscapes_id

}  // namespace rdd::data
