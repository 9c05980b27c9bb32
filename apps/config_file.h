// `--config FILE` for a subcommand (`rdd train --config configs/cityscapes/rdd_dlv3_r18.ini`).
//
// CLI11 (2.1) reads config files only for the main app: a subcommand's set_config() adds the flag but
// never reads the file. add_config_file_option() adds a --config that works on a subcommand:
//
//   add_run_options(sub, options, distill);   // every flag of the command
//   add_config_file_option(sub);               // replaces set_config's inert --config
//
// The file is read with CLI11's own TOML/INI reader (`key = value` lines with the long flag names without
// dashes, e.g. `teacher-weights = "t.safetensors"`, `lr = 0.02`, `non-strict = true`; `#` and `;`
// comments) after the command line is parsed and before required options are checked. A value fills an
// option only when the command line did not set it, so flags win over the file. Unlike CLI11's reader,
// a key that is not an option of the subcommand, a section header or a missing file is an error naming
// the file and the key (a typo must not fall back silently to a default).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace rdd::apps {

CLI::Option* add_config_file_option(CLI::App* sub, const std::string& flag = "--config");

// Applies one config file to `sub` as described above (exposed for tests).
void apply_config_file(CLI::App* sub, const std::string& path);

}  // namespace rdd::apps
