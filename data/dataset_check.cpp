#include "data/dataset_check.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "data/image.h"
#include "engine/error.h"

namespace rdd::data {

namespace fs = std::filesystem;

namespace {

constexpr int kCacheVersion = 1;

struct FileStamp {
  int64_t size = -1, mtime_ns = -1;
};

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {int64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1000000000 + int64_t(st.st_mtim.tv_nsec)};
}

std::string relative_to(const fs::path& base, const std::string& path) {
  fs::path b = base.lexically_normal();
  if (!b.empty() && !b.has_filename()) b = b.parent_path();  // "data/" → "data"
  if (b.empty()) b = ".";
  const fs::path rel = fs::path(path).lexically_normal().lexically_relative(b);
  return rel.empty() ? path : rel.generic_string();
}

uint64_t fnv1a(uint64_t h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// cache key of a sample: its label mapping and both relative paths.
std::string cache_key(const Dataset& ds, const fs::path& base, size_t i) {
  const SampleFiles& f = ds.files[i];
  const std::string mapping = size_t(f.mapping) < ds.mappings.size() ? ds.mappings[size_t(f.mapping)].description : "";
  return mapping + "\t" + relative_to(base, f.image) + "\t" + relative_to(base, f.label);
}

nlohmann::json read_cache(const std::string& path) {
  if (path.empty()) return nlohmann::json::object();
  std::ifstream f(path);
  if (!f) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("version") || j["version"] != kCacheVersion || !j.contains("samples") ||
      !j["samples"].is_object())
    return nlohmann::json::object();  // unreadable or another version: start afresh
  return j["samples"];
}

void write_cache(const std::string& path, const nlohmann::json& samples) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    f << nlohmann::json{{"version", kCacheVersion}, {"samples", samples}}.dump() << "\n";
    f.flush();
    RDD_CHECK(f.good(), "data check: cannot write its cache ", tmp);
  }
  RDD_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "data check: cannot rename ", tmp, " to ", path);
}

}  // namespace

std::string dataset_base(const Dataset& ds) {
  if (ds.name == "list") return fs::path(ds.root).parent_path().string();
  return ds.root;
}

void check_sample(const Dataset& ds, size_t i) {
  RDD_CHECK(i < ds.files.size(), ds.name, ": sample ", i, " out of range (", ds.files.size(), " samples)");
  const SampleFiles& f = ds.files[i];
  const ImageHeader image = read_image_header(f.image);
  const LabelImage raw = read_label_png(f.label);
  RDD_CHECK(raw.height == image.height && raw.width == image.width, f.label, ": label map is ", raw.height, "x",
            raw.width, " (HxW) but its image ", f.image, " is ", image.height, "x", image.width);
  ds.map_labels(raw, f.mapping, f.label);  // every id against the dataset's mapping
}

DataCheckResult check_dataset(const Dataset& ds, const DataCheckOptions& o) {
  const size_t n = ds.size();
  const fs::path base = dataset_base(ds);
  nlohmann::json cache = read_cache(o.cache_path);

  std::vector<std::string> keys(n), problems(n);
  std::vector<FileStamp> image_stamps(n), label_stamps(n);
  std::vector<char> need(n, 1);
  DataCheckResult result;
  for (size_t i = 0; i < n; ++i) {
    keys[i] = cache_key(ds, base, i);
    image_stamps[i] = stamp_of(ds.files[i].image);
    label_stamps[i] = stamp_of(ds.files[i].label);
    auto it = cache.find(keys[i]);
    if (it == cache.end() || !it->is_array() || it->size() != 5) continue;
    const nlohmann::json& e = *it;
    if (e[0] == image_stamps[i].size && e[1] == image_stamps[i].mtime_ns && e[2] == label_stamps[i].size &&
        e[3] == label_stamps[i].mtime_ns && e[4].is_string() && image_stamps[i].size >= 0 && label_stamps[i].size >= 0) {
      problems[i] = e[4].get<std::string>();
      need[i] = 0;
      ++result.cached;
    }
  }

  std::vector<size_t> todo;
  for (size_t i = 0; i < n; ++i)
    if (need[i]) todo.push_back(i);
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex report_mu;
  size_t done = result.cached, bad = 0;
  for (size_t i = 0; i < n; ++i) bad += !need[i] && !problems[i].empty();
  const size_t report_every = std::max<size_t>(1, n / 100);
  size_t last_reported = 0;
  auto report = [&](bool final_call) {
    if (!o.progress) return;
    if (final_call || done - last_reported >= report_every) {
      last_reported = done;
      o.progress(done, n, bad);
    }
  };
  {
    std::lock_guard<std::mutex> lock(report_mu);
    report(false);
  }
  auto work = [&] {
    for (;;) {
      if (stop) return;
      if (o.cancelled && o.cancelled()) {
        stop = true;
        return;
      }
      const size_t k = next++;
      if (k >= todo.size()) return;
      const size_t i = todo[k];
      std::string problem;
      try {
        check_sample(ds, i);
      } catch (const std::exception& e) {
        problem = e.what();
        if (problem.empty()) problem = ds.files[i].image + ": unreadable sample";
      }
      std::lock_guard<std::mutex> lock(report_mu);
      problems[i] = std::move(problem);
      ++done;
      bad += !problems[i].empty();
      report(false);
    }
  };
  const int threads = int(std::clamp<size_t>(size_t(std::max(1, o.threads)), 1, std::max<size_t>(1, todo.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (stop) fail(ds.name, " ", ds.split, ": the data check was interrupted");
  report(true);
  result.checked = todo.size();

  for (size_t i = 0; i < n; ++i)
    if (!problems[i].empty()) {
      result.bad.push_back(i);
      result.problems.push_back(problems[i]);
    }
  if (!o.cache_path.empty() && !todo.empty()) {
    for (size_t i : todo)
      if (image_stamps[i].size >= 0 && label_stamps[i].size >= 0)
        cache[keys[i]] = {image_stamps[i].size, image_stamps[i].mtime_ns, label_stamps[i].size, label_stamps[i].mtime_ns,
                          problems[i]};
    write_cache(o.cache_path, cache);
  }
  return result;
}

Dataset without_samples(const Dataset& ds, const std::vector<size_t>& indices) {
  Dataset out = ds;
  std::vector<char> drop(ds.files.size(), 0);
  for (size_t i : indices)
    if (i < drop.size()) drop[i] = 1;
  out.files.clear();
  for (size_t i = 0; i < ds.files.size(); ++i)
    if (!drop[i]) out.files.push_back(ds.files[i]);
  return out;
}

nlohmann::json dataset_identity(const Dataset& ds) {
  const fs::path base = dataset_base(ds);
  uint64_t h = 14695981039346656037ull;
  for (const SampleFiles& f : ds.files) h = fnv1a(h, relative_to(base, f.image) + " " + relative_to(base, f.label) + "\n");
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return {{"name", ds.name}, {"split", ds.split}, {"samples", ds.size()}, {"files_hash", hex}};
}

}  // namespace rdd::data
