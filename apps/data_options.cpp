#include "apps/data_options.h"

#include "engine/error.h"

namespace rdd::apps {

data::DatasetSpec DataOptions::spec() const {
  data::DatasetSpec s;
  s.kind = dataset;
  s.root = root;
  s.split = split;
  s.num_classes = num_classes;
  s.ignore_value = ignore_value;
  return s;
}

void add_data_options(CLI::App* sub, DataOptions& o, bool required, const std::string& default_split) {
  o.split = default_split;
  auto* d = sub->add_option("--dataset", o.dataset, "Dataset: cityscapes, camvid, voc, ade20k or list")
                ->check(CLI::IsMember(data::dataset_kinds()));
  auto* r = sub->add_option("--data-root", o.root,
                            "Dataset folder in its original layout (for --dataset list: the list file of "
                            "'image label' lines, paths relative to it)");
  sub->add_option("--split", o.split, "Split: train, val or test")
      ->check(CLI::IsMember({"train", "val", "test", "trainval"}))
      ->capture_default_str();
  sub->add_option("--num-classes", o.num_classes, "Number of classes (--dataset list only)");
  sub->add_option("--ignore-value", o.ignore_value, "Raw label value meaning ignore (--dataset list only)")
      ->capture_default_str();
  if (required) {
    d->required();
    r->required();
  } else {
    d->needs(r);
    r->needs(d);
  }
}

data::Dataset open_dataset(const DataOptions& o, std::vector<std::string>* problems) {
  RDD_CHECK(o.given(), "no dataset selected (--dataset and --data-root)");
  RDD_CHECK(o.dataset != "list" || o.num_classes > 0, "--dataset list needs --num-classes");
  return data::open_dataset(o.spec(), problems);
}

}  // namespace rdd::apps
