#include "apps/config_file.h"

#include <filesystem>
#include <fstream>
#include <set>

namespace rdd::apps {

void apply_config_file(CLI::App* sub, const std::string& path) {
  const std::string who = "--config " + path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw CLI::ConfigError(who + ": no such file");
  {  // a binary file (a checkpoint given by mistake) is named as such, not echoed byte by byte
    std::ifstream f(path, std::ios::binary);
    std::string head(4096, '\0');
    f.read(head.data(), std::streamsize(head.size()));
    head.resize(size_t(f.gcount()));
    for (size_t i = 0; i < head.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(head[i]);
      if (c == 0 || (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != '\v'))
        throw CLI::ConfigError(who + ": not a text config file (byte " + std::to_string(int(c)) + " at offset " +
                               std::to_string(i) + "); a config file holds `key = value` lines");
    }
  }
  CLI::ConfigTOML reader;  // TOML and INI both: `key = value`, '#' and ';' comments, quoted strings
  const std::vector<CLI::ConfigItem> items = reader.from_file(path);
  std::set<std::string> seen;
  for (const CLI::ConfigItem& item : items) {
    if (!item.parents.empty() || item.name == "--" || item.name == "++")
      throw CLI::ConfigError(who + ": sections ([" + item.fullname() + "]) are not supported; write `key = value` "
                                   "lines for `rdd " + sub->get_name() + "` only");
    if (!seen.insert(item.name).second) throw CLI::ConfigError(who + ": '" + item.name + "' is set twice");
    CLI::Option* op = sub->get_option_no_throw("--" + item.name);
    if (op == nullptr || item.name.rfind('-', 0) == 0)
      throw CLI::ConfigError(who + ": '" + item.name + "' is not an option of `rdd " + sub->get_name() +
                             "` (keys are the long flag names without dashes; see `rdd " + sub->get_name() +
                             " --help`)");
    if (!op->get_configurable()) throw CLI::ConfigError(who + ": '" + item.name + "' cannot be set from a file");
    if (!op->empty()) continue;  // given on the command line: the command line wins
    try {
      if (op->get_expected_min() == 0)  // a flag: true/false/1/0/yes/no
        op->add_result(op->get_flag_value(item.name, reader.to_flag(item)));
      else
        op->add_result(item.inputs);
      op->run_callback();  // validators and the variable binding, now (the option may already be processed)
    } catch (const CLI::ParseError& e) {
      throw CLI::ConfigError(who + ": '" + item.name + "': " + e.what());
    }
  }
}

CLI::Option* add_config_file_option(CLI::App* sub, const std::string& flag) {
  sub->set_config("");  // drops an inert set_config() option of the same name, if any
  return sub->add_option_function<std::string>(
      flag, [sub](const std::string& path) { apply_config_file(sub, path); },
      "Read options from a config file: `key = value` lines with the long flag names (lr = 0.02, "
      "teacher-weights = \"t.safetensors\"); flags given on the command line win; configs/ holds presets");
}

}  // namespace rdd::apps
