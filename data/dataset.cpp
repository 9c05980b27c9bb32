#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace rdd::data {

namespace fs = std::filesystem;

namespace {

// ----------------------------------------------------------------------------------------------
// Class metadata
// ----------------------------------------------------------------------------------------------

const std::vector<std::string> kCityscapesNames = {
    "road",  "sidewalk", "building", "wall",   "fence", "pole",  "traffic light", "traffic sign", "vegetation", "terrain",
    "sky",   "person",   "rider",    "car",    "truck", "bus",   "train",         "motorcycle",   "bicycle"};
const Palette kCityscapesPalette = {
    {128, 64, 128}, {244, 35, 232}, {70, 70, 70},   {102, 102, 156}, {190, 153, 153}, {153, 153, 153}, {250, 170, 30},
    {220, 220, 0},  {107, 142, 35}, {152, 251, 152}, {70, 130, 180}, {220, 20, 60},   {255, 0, 0},     {0, 0, 142},
    {0, 0, 70},     {0, 60, 100},   {0, 80, 100},   {0, 0, 230},     {119, 11, 32}};
// The 19 class weights of the released code's OHEM cross-entropy (rdd-method.md §1.4), trainId order.
const std::vector<float> kCityscapesWeights = {0.8373f, 0.9180f, 0.8660f, 1.0345f, 1.0166f, 0.9969f, 0.9754f,
                                               1.0489f, 0.8786f, 1.0023f, 0.9539f, 0.9843f, 1.1116f, 0.9037f,
                                               1.0865f, 1.0955f, 1.0865f, 1.1529f, 1.0507f};

const std::vector<std::string> kCamvidNames = {"sky",  "building",   "pole", "road",       "sidewalk", "tree",
                                               "sign", "fence",      "car",  "pedestrian", "bicyclist"};
const Palette kCamvidPalette = {{128, 128, 128}, {128, 0, 0},   {192, 192, 128}, {128, 64, 128},
                                {0, 0, 192},     {128, 128, 0}, {192, 128, 128}, {64, 64, 128},
                                {64, 0, 128},    {64, 64, 0},   {0, 128, 192}};

const std::vector<std::string> kVocNames = {"background", "aeroplane", "bicycle",     "bird",  "boat",      "bottle",
                                            "bus",        "car",       "cat",         "chair", "cow",       "diningtable",
                                            "dog",        "horse",     "motorbike",   "person", "pottedplant", "sheep",
                                            "sofa",       "train",     "tvmonitor"};

const std::vector<std::string> kAdeNames = {
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet", "sidewalk",
    "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water", "painting", "sofa",
    "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp",
    "bathtub", "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand",
    "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer",
    "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower",
    "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel",
    "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship",
    "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name",
    "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag"};

LabelMapping identity_mapping(int num_classes, std::initializer_list<int> ignore_values, const std::string& desc) {
  LabelMapping m;
  m.table.fill(LabelMapping::kMapInvalid);
  for (int v = 0; v < num_classes; ++v) m.table[size_t(v)] = int16_t(v);
  for (int v : ignore_values) m.table[size_t(v)] = LabelMapping::kMapIgnore;
  m.description = desc;
  return m;
}

// ----------------------------------------------------------------------------------------------
// File helpers
// ----------------------------------------------------------------------------------------------

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Regular files directly in `dir` whose name ends with `suffix`, sorted.
std::vector<fs::path> files_with_suffix(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        is_file(it->path()))
      out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> subdirs(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (is_dir(it->path())) out.push_back(it->path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> split_ws(const std::string& line) {
  std::istringstream is(line);
  std::vector<std::string> out;
  for (std::string t; is >> t;) out.push_back(t);
  return out;
}

// Reads a list file: one entry per non-empty line, '#' comments allowed. Each entry is its tokens and
// its 1-based line number.
struct ListLine {
  std::vector<std::string> tokens;
  int line;
};
std::vector<ListLine> read_list(const fs::path& path) {
  std::ifstream f(path);
  RDD_CHECK(f.good(), path.string(), ": cannot open the list file");
  std::vector<ListLine> out;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::vector<std::string> t = split_ws(line);
    if (!t.empty()) out.push_back({std::move(t), n});
  }
  return out;
}

// A path from a list file: relative to `base`; a leading '/' that does not exist on this machine is
// taken as relative too (the reference lists write "/JPEGImages/x.jpg" or "/SegNet/CamVid/train/x.png").
fs::path resolve_list_path(const fs::path& base, const std::string& entry, int strip_to_components = 0) {
  fs::path p(entry);
  if (p.is_absolute() && is_file(p)) return p;
  fs::path rel = p.relative_path();
  fs::path candidate = base / rel;
  if (is_file(candidate) || strip_to_components == 0) return candidate;
  // Keep only the last `strip_to_components` components (e.g. "train/x.png").
  std::vector<fs::path> parts(rel.begin(), rel.end());
  fs::path tail;
  for (size_t i = parts.size() > size_t(strip_to_components) ? parts.size() - size_t(strip_to_components) : 0;
       i < parts.size(); ++i)
    tail /= parts[i];
  fs::path c2 = base / tail;
  return is_file(c2) ? c2 : candidate;
}

// Collects problems: either throws at the end (strict) or hands them to the caller.
class Problems {
 public:
  explicit Problems(std::vector<std::string>* sink) : sink_(sink) {}
  void add(std::string p) { list_.push_back(std::move(p)); }
  bool empty() const { return list_.empty(); }
  void finish(const std::string& who) {
    if (list_.empty()) return;
    if (sink_) {
      sink_->insert(sink_->end(), list_.begin(), list_.end());
      return;
    }
    std::ostringstream os;
    os << who << ": " << list_.size() << " problem" << (list_.size() == 1 ? "" : "s") << ":";
    for (size_t i = 0; i < list_.size() && i < 8; ++i) os << "\n  " << list_[i];
    if (list_.size() > 8) os << "\n  ... and " << list_.size() - 8 << " more (run `rdd info` for the full list)";
    fail(os.str());
  }

 private:
  std::vector<std::string>* sink_;
  std::vector<std::string> list_;
};

void add_sample(Dataset& ds, Problems& problems, const fs::path& image, const fs::path& label, int mapping,
                const std::string& origin) {
  const bool has_image = is_file(image), has_label = is_file(label);
  if (!has_image) problems.add(image.string() + ": image file missing" + origin);
  if (!has_label) problems.add(label.string() + ": label file missing" + origin);
  if (has_image && has_label) ds.files.push_back({image.string(), label.string(), mapping});
}

std::string split_dir_name(const std::string& kind, const std::string& split) {
  RDD_CHECK(split == "train" || split == "val" || split == "test" || split == "trainval", kind, ": unknown split '",
            split, "' (train, val, test or trainval)");
  return split;
}

// ----------------------------------------------------------------------------------------------
// Layouts
// ----------------------------------------------------------------------------------------------

// Cityscapes: leftImg8bit/<split>/<city>/<name>_leftImg8bit.png,
//             gtFine/<split>/<city>/<name>_gtFine_labelIds.png (or _gtFine_labelTrainIds.png).
void scan_cityscapes(Dataset& ds, const fs::path& root, Problems& problems) {
  const std::string split = split_dir_name("cityscapes", ds.split);
  const fs::path img_root = root / "leftImg8bit" / split;
  const fs::path lab_root = root / "gtFine" / split;
  RDD_CHECK(is_dir(img_root), "cityscapes: ", img_root.string(),
            " is not a folder (expected the Cityscapes layout leftImg8bit/<split>/<city>/ under --data-root)");
  RDD_CHECK(is_dir(lab_root), "cityscapes: ", lab_root.string(), " is not a folder (expected gtFine/<split>/<city>/)");
  const std::string suffix = "_leftImg8bit.png";
  for (const fs::path& city : subdirs(img_root)) {
    for (const fs::path& img : files_with_suffix(city, suffix)) {
      const std::string n = img.filename().string();
      const std::string base = n.substr(0, n.size() - suffix.size());
      const fs::path dir = lab_root / city.filename();
      const fs::path ids = dir / (base + "_gtFine_labelIds.png");
      const fs::path train_ids = dir / (base + "_gtFine_labelTrainIds.png");
      if (is_file(ids)) {
        ds.files.push_back({img.string(), ids.string(), 0});
      } else if (is_file(train_ids)) {
        ds.files.push_back({img.string(), train_ids.string(), 1});
      } else {
        problems.add(ids.string() + ": label file missing (nor " + train_ids.filename().string() + ") for " +
                     img.string());
      }
    }
  }
}

// CamVid (SegNet layout): <split>/<name>.png with <split>annot/<name>.png, or the reference list files
// ("train/x.png trainannot/x.png" per line) at <root>/<split>.txt or <root>/camvid_<split>_list.txt.
void scan_camvid(Dataset& ds, const fs::path& root, Problems& problems) {
  const std::string split = split_dir_name("camvid", ds.split);
  for (const fs::path& list : {root / (split + ".txt"), root / ("camvid_" + split + "_list.txt"),
                               root / "list" / (split + ".txt")}) {
    if (!is_file(list)) continue;
    for (const ListLine& l : read_list(list)) {
      const std::string where = " (" + list.string() + " line " + std::to_string(l.line) + ")";
      if (l.tokens.size() != 2) {
        problems.add(list.string() + " line " + std::to_string(l.line) + ": expected 'image label', got " +
                     std::to_string(l.tokens.size()) + " fields");
        continue;
      }
      add_sample(ds, problems, resolve_list_path(root, l.tokens[0], 2), resolve_list_path(root, l.tokens[1], 2), 0,
                 where);
    }
    return;
  }
  const fs::path img_dir = root / split, lab_dir = root / (split + "annot");
  RDD_CHECK(is_dir(img_dir), "camvid: neither a list file (", (root / (split + ".txt")).string(), ") nor the folder ",
            img_dir.string(), " exists (expected the SegNet CamVid layout under --data-root)");
  for (const fs::path& img : files_with_suffix(img_dir, ".png"))
    add_sample(ds, problems, img, lab_dir / img.filename(), 0, "");
}

// Pascal VOC 2012 (+ SBD aug): ImageSets/Segmentation/<list>.txt of ids (or "image label" pairs),
// JPEGImages/<id>.jpg, SegmentationClassAug/<id>.png (train) or SegmentationClass/<id>.png (val).
void scan_voc(Dataset& ds, fs::path root, Problems& problems) {
  if (is_dir(root / "VOCdevkit" / "VOC2012")) root = root / "VOCdevkit" / "VOC2012";
  else if (is_dir(root / "VOC2012")) root = root / "VOC2012";
  const std::string split = split_dir_name("voc", ds.split);
  const fs::path sets = root / "ImageSets" / "Segmentation";
  std::vector<fs::path> candidates;
  if (split == "train") candidates = {sets / "train_aug.txt", root / "train_aug.txt", sets / "train.txt"};
  else candidates = {sets / (split + ".txt"), root / (split + ".txt")};
  fs::path list;
  for (const fs::path& c : candidates)
    if (is_file(c)) {
      list = c;
      break;
    }
  RDD_CHECK(!list.empty(), "voc: no list file for split '", split, "' (looked for ", candidates.front().string(),
            " and others under --data-root)");
  const bool aug = is_dir(root / "SegmentationClassAug"), plain = is_dir(root / "SegmentationClass");
  const fs::path label_dir = (split == "train" ? (aug || !plain) : (!plain && aug)) ? root / "SegmentationClassAug"
                                                                                    : root / "SegmentationClass";
  for (const ListLine& l : read_list(list)) {
    const std::string where = " (" + list.string() + " line " + std::to_string(l.line) + ")";
    if (l.tokens.size() == 1) {
      add_sample(ds, problems, root / "JPEGImages" / (l.tokens[0] + ".jpg"), label_dir / (l.tokens[0] + ".png"), 0,
                 where);
    } else if (l.tokens.size() == 2) {
      add_sample(ds, problems, resolve_list_path(root, l.tokens[0]), resolve_list_path(root, l.tokens[1]), 0, where);
    } else {
      problems.add(list.string() + " line " + std::to_string(l.line) + ": expected an id or 'image label'");
    }
  }
}

// ADE20K (ADEChallengeData2016): images/{training,validation}/<n>.jpg, annotations/.../<n>.png.
void scan_ade20k(Dataset& ds, fs::path root, Problems& problems) {
  if (is_dir(root / "ADEChallengeData2016")) root = root / "ADEChallengeData2016";
  RDD_CHECK(ds.split == "train" || ds.split == "val", "ade20k: split '", ds.split,
            "' has no labels (train or val)");
  const std::string dir = ds.split == "train" ? "training" : "validation";
  const fs::path img_dir = root / "images" / dir, lab_dir = root / "annotations" / dir;
  RDD_CHECK(is_dir(img_dir), "ade20k: ", img_dir.string(),
            " is not a folder (expected ADEChallengeData2016/images/{training,validation}/ under --data-root)");
  for (const fs::path& img : files_with_suffix(img_dir, ".jpg"))
    add_sample(ds, problems, img, lab_dir / (img.stem().string() + ".png"), 0, "");
}

// Generic list file: "image label" per line, paths relative to the list file's folder.
void scan_list(Dataset& ds, const fs::path& list, Problems& problems) {
  RDD_CHECK(is_file(list), "list: ", list.string(), " is not a file (--data-root names the list file for --dataset list)");
  const fs::path base = list.parent_path();
  for (const ListLine& l : read_list(list)) {
    const std::string where = " (" + list.string() + " line " + std::to_string(l.line) + ")";
    if (l.tokens.size() != 2) {
      problems.add(list.string() + " line " + std::to_string(l.line) + ": expected 'image label', got " +
                   std::to_string(l.tokens.size()) + " fields");
      continue;
    }
    add_sample(ds, problems, resolve_list_path(base, l.tokens[0]), resolve_list_path(base, l.tokens[1]), 0, where);
  }
}

}  // namespace

// ----------------------------------------------------------------------------------------------
// Public
// ----------------------------------------------------------------------------------------------

const std::vector<std::string>& dataset_kinds() {
  static const std::vector<std::string> k = {"cityscapes", "camvid", "voc", "ade20k", "list"};
  return k;
}

LabelMapping cityscapes_label_ids_mapping() {
  LabelMapping m;
  m.table.fill(LabelMapping::kMapInvalid);
  for (int v = 0; v <= 33; ++v) m.table[size_t(v)] = LabelMapping::kMapIgnore;
  m.table[255] = LabelMapping::kMapIgnore;  // license plate (id −1) as stored in 8 bits
  const int ids[19] = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33};
  for (int t = 0; t < 19; ++t) m.table[size_t(ids[t])] = int16_t(t);
  m.description = "Cityscapes labelIds (0..33, 255)";
  return m;
}

LabelMapping cityscapes_train_ids_mapping() {
  return identity_mapping(19, {255}, "Cityscapes labelTrainIds (0..18, 255 ignore)");
}

Palette voc_palette(int n) {
  Palette p;
  for (int i = 0; i < n; ++i) {
    int r = 0, g = 0, b = 0, c = i;
    for (int j = 0; j < 8; ++j) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    p.push_back({uint8_t(r), uint8_t(g), uint8_t(b)});
  }
  return p;
}

Dataset dataset_metadata(const std::string& kind, int num_classes) {
  Dataset ds;
  ds.name = kind;
  if (kind == "cityscapes") {
    ds.num_classes = 19;
    ds.class_names = kCityscapesNames;
    ds.palette = kCityscapesPalette;
    ds.class_weights = kCityscapesWeights;
    ds.mappings = {cityscapes_label_ids_mapping(), cityscapes_train_ids_mapping()};
  } else if (kind == "camvid") {
    ds.num_classes = 11;
    ds.class_names = kCamvidNames;
    ds.palette = kCamvidPalette;
    ds.mappings = {identity_mapping(11, {11, 255}, "CamVid (0..10, 11 and 255 ignore)")};
  } else if (kind == "voc") {
    ds.num_classes = 21;
    ds.class_names = kVocNames;
    ds.palette = voc_palette(21);
    ds.mappings = {identity_mapping(21, {255}, "Pascal VOC (0..20, 255 ignore)")};
  } else if (kind == "ade20k") {
    ds.num_classes = 150;
    ds.class_names = kAdeNames;
    // The VOC colour map, shifted by one so class 0 is not black (ADE20K has no official palette in
    // the reference code).
    Palette p = voc_palette(151);
    ds.palette.assign(p.begin() + 1, p.end());
    LabelMapping m;
    m.table.fill(LabelMapping::kMapInvalid);
    m.table[0] = LabelMapping::kMapIgnore;  // reduce-zero-label: 0 (other) → ignore, v → v − 1
    for (int v = 1; v <= 150; ++v) m.table[size_t(v)] = int16_t(v - 1);
    m.table[255] = LabelMapping::kMapIgnore;
    m.description = "ADE20K (0 ignore, 1..150 → 0..149)";
    ds.mappings = {m};
  } else if (kind == "list") {
    RDD_CHECK(num_classes >= 1 && num_classes <= 255, "list: --num-classes must be in 1..255, got ", num_classes);
    ds.num_classes = num_classes;
    for (int c = 0; c < num_classes; ++c) ds.class_names.push_back("class " + std::to_string(c));
    ds.palette = voc_palette(num_classes);
  } else {
    fail("dataset: unknown dataset '", kind, "' (cityscapes, camvid, voc, ade20k or list)");
  }
  RDD_CHECK(int(ds.class_names.size()) == ds.num_classes && int(ds.palette.size()) == ds.num_classes,
            "dataset ", kind, ": metadata has ", ds.class_names.size(), " names for ", ds.num_classes, " classes");
  return ds;
}

Dataset open_dataset(const DatasetSpec& spec, std::vector<std::string>* problems_out) {
  RDD_CHECK(!spec.kind.empty(), "no dataset selected (--dataset and --data-root)");
  RDD_CHECK(spec.kind != "list" || spec.num_classes > 0, "--dataset list needs --num-classes");
  Dataset ds = dataset_metadata(spec.kind, spec.num_classes);
  if (spec.kind == "list") {
    RDD_CHECK(spec.ignore_value >= 0 && spec.ignore_value <= 255, "list: --ignore-value must be in 0..255, got ",
              spec.ignore_value);
    RDD_CHECK(spec.ignore_value >= spec.num_classes, "list: --ignore-value ", spec.ignore_value,
              " is a class id (classes are 0..", spec.num_classes - 1, ")");
    ds.mappings = {identity_mapping(spec.num_classes, {spec.ignore_value},
                                    "list (0.." + std::to_string(spec.num_classes - 1) + ", " +
                                        std::to_string(spec.ignore_value) + " ignore)")};
  }
  ds.split = spec.kind == "list" ? "list" : spec.split;
  ds.root = spec.root;
  RDD_CHECK(!spec.root.empty(), spec.kind, ": no --data-root given");
  const fs::path root(spec.root);
  RDD_CHECK(spec.kind == "list" || is_dir(root), spec.kind, ": --data-root ", spec.root, " is not a folder");
  Problems problems(problems_out);
  if (spec.kind == "cityscapes") scan_cityscapes(ds, root, problems);
  else if (spec.kind == "camvid") scan_camvid(ds, root, problems);
  else if (spec.kind == "voc") scan_voc(ds, root, problems);
  else if (spec.kind == "ade20k") scan_ade20k(ds, root, problems);
  else scan_list(ds, root, problems);
  if (ds.files.empty() && problems.empty())
    problems.add(spec.kind + " " + ds.split + " under " + spec.root + ": no samples found (empty list or folder)");
  problems.finish(spec.kind + " " + ds.split + " (" + spec.root + ")");
  return ds;
}

LabelImage Dataset::map_labels(const LabelImage& raw, int mapping, const std::string& file) const {
  RDD_CHECK(mapping >= 0 && size_t(mapping) < mappings.size(), name, ": no label mapping ", mapping);
  const LabelMapping& m = mappings[size_t(mapping)];
  LabelImage out;
  out.height = raw.height;
  out.width = raw.width;
  out.channels = 1;
  out.pixels.resize(raw.pixels.size());
  int64_t bad = 0, first_bad = -1;
  for (size_t i = 0; i < raw.pixels.size(); ++i) {
    const int16_t t = m.table[raw.pixels[i]];
    if (t == LabelMapping::kMapInvalid) {
      if (bad++ == 0) first_bad = int64_t(i);
      out.pixels[i] = kIgnoreU8;
    } else {
      out.pixels[i] = t < 0 ? kIgnoreU8 : uint8_t(t);
    }
  }
  if (bad > 0) {
    const int64_t x = first_bad % raw.width, y = first_bad / raw.width;
    fail(file, ": label id ", int(raw.pixels[size_t(first_bad)]), " at (x=", x, ", y=", y,
         ") is outside the dataset's mapping ", m.description, " (", bad, " such pixel", bad == 1 ? "" : "s", ")");
  }
  return out;
}

Sample Dataset::load(size_t i) const {
  RDD_CHECK(i < files.size(), name, ": sample ", i, " out of range (", files.size(), " samples)");
  const SampleFiles& f = files[i];
  Sample s;
  s.image = read_image(f.image);
  const LabelImage raw = read_label_png(f.label);
  RDD_CHECK(raw.height == s.image.height && raw.width == s.image.width, f.label, ": label map is ", raw.width, "x",
            raw.height, " but its image ", f.image, " is ", s.image.width, "x", s.image.height);
  s.label = map_labels(raw, f.mapping, f.label);
  return s;
}

}  // namespace rdd::data
