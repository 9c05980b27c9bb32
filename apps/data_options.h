// Selecting data on the command line, shared by every subcommand that reads a dataset:
//
//   DataOptions data;
//   add_data_options(sub, data);                 // --dataset, --data-root, --split, --num-classes, --ignore-value
//   data::Dataset ds = open_dataset(data);       // or open_dataset(data, &problems) to collect problems
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "data/dataset.h"

namespace rdd::apps {

struct DataOptions {
  std::string dataset;        // cityscapes | camvid | voc | ade20k | list
  std::string root;           // dataset folder, or the list file for `list`
  std::string split = "train";
  int num_classes = 0;        // list only
  int ignore_value = 255;     // list only
  bool given() const { return !dataset.empty(); }
  data::DatasetSpec spec() const;
};

// Adds the options to `sub`. With `required`, --dataset and --data-root must be given.
void add_data_options(CLI::App* sub, DataOptions& o, bool required, const std::string& default_split = "train");

// Opens the dataset (see data::open_dataset).
data::Dataset open_dataset(const DataOptions& o, std::vector<std::string>* problems = nullptr);

}  // namespace rdd::apps
