// What a resume compares. A run's configuration names the files it reads by path (data_root, val_list,
// teacher_weights, init), and a resumed run may find them elsewhere (a dataset moved to another disk, a
// teacher copied to the node). Where the saved configuration also records what the file is — train_data /
// val_data (the dataset's identity: name, split, sample count, hash of the relative file list;
// data/dataset_check.h), teacher_weights_file / init_file (size and content hash) — the identity is
// compared and the path is not. Checkpoints from before the identities compare the paths, as they did.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rdd::train {

// {"bytes": size, "hash": 64-bit hash of the content, hex}. Throws naming the file when it cannot be read.
nlohmann::json file_fingerprint(const std::string& path);

// "key: saved X, now Y" for every difference that refuses the resume (checkpoint.h config_differences, with
// the paths above replaced by their identities). `with_data_identity` false leaves train_data and val_data
// out (they are known only after the data check: an early comparison without them, then the full one).
std::vector<std::string> resume_differences(const nlohmann::json& saved, const nlohmann::json& now,
                                            bool with_data_identity = true);

}  // namespace rdd::train
