#include "engine/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <set>
#include <vector>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace rdd {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // the format's own limit (100 MB)
constexpr const char* kMetadataKey = "__metadata__";

// Safetensors dtype names ↔ rdd dtypes. Anything else in the format (BOOL, I8, U16, F8_E4M3, ...) is
// refused by name.
struct DTypeEntry {
  const char* name;
  DType dtype;
};
constexpr DTypeEntry kDTypes[] = {{"F32", DType::f32}, {"F64", DType::f64}, {"BF16", DType::bf16},
                                  {"F16", DType::f16}, {"I32", DType::i32}, {"I64", DType::i64},
                                  {"U8", DType::u8}};

bool dtype_from_name(const std::string& name, DType* out) {
  for (const DTypeEntry& e : kDTypes)
    if (name == e.name) {
      *out = e.dtype;
      return true;
    }
  return false;
}

const char* safetensors_dtype_name(DType t) {
  for (const DTypeEntry& e : kDTypes)
    if (e.dtype == t) return e.name;
  fail("safetensors: dtype ", dtype_name(t), " has no safetensors name");
}

uint64_t load_u64_le(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian host (static_assert above)
}

// A JSON value as a non-negative integer. Returns "" when it is one, else what it is instead.
std::string as_index(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return "";
  }
  if (v.is_number_integer()) return "negative (" + v.dump() + ")";
  if (v.is_number_float()) return "not an integer (" + v.dump() + ")";
  return std::string("a JSON ") + v.type_name() + ", not an integer";
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// One tensor entry of the header, validated on its own (bounds against the data section included).
Entry parse_entry(const std::string& what, const std::string& name, const json& v, uint64_t data_size) {
  const std::string who = what + ": tensor '" + name + "'";
  RDD_CHECK(v.is_object(), who, ": entry is a JSON ", v.type_name(), ", expected an object with dtype, shape and data_offsets");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    RDD_CHECK(v.contains(key), who, ": entry has no '", key, "'");
  Entry e;
  e.name = name;

  const json& dt = v["dtype"];
  RDD_CHECK(dt.is_string(), who, ": 'dtype' is a JSON ", dt.type_name(), ", expected a string");
  const std::string dts = dt.get<std::string>();
  RDD_CHECK(dtype_from_name(dts, &e.dtype), what, ": unsupported dtype '", dts, "' for tensor '", name,
            "' (rdd reads F32, F64, BF16, F16, I32, I64, U8)");

  const json& sh = v["shape"];
  RDD_CHECK(sh.is_array(), who, ": 'shape' is a JSON ", sh.type_name(), ", expected an array of integers");
  int64_t numel = 1;
  bool overflow = false;
  for (size_t i = 0; i < sh.size(); ++i) {
    uint64_t d = 0;
    const std::string bad = as_index(sh[i], &d);
    RDD_CHECK(bad.empty(), who, ": shape ", sh.dump(), ": dimension ", i, " is ", bad);
    RDD_CHECK(d <= uint64_t(std::numeric_limits<int64_t>::max()), who, ": shape ", sh.dump(), ": dimension ", i,
              " is too large");
    e.shape.push_back(int64_t(d));
    overflow = overflow || __builtin_mul_overflow(numel, int64_t(d), &numel);
  }
  // Every prefix product must fit (shape_numel multiplies left to right in int64).
  RDD_CHECK(!overflow, who, ": shape ", sh.dump(), " has more elements than fit in 64 bits");
  uint64_t nbytes = 0;
  RDD_CHECK(!__builtin_mul_overflow(uint64_t(numel), uint64_t(dtype_size(e.dtype)), &nbytes), who, ": shape ",
            sh.dump(), " × ", dts, " is more bytes than fit in 64 bits");

  const json& off = v["data_offsets"];
  RDD_CHECK(off.is_array() && off.size() == 2, who, ": 'data_offsets' is ", off.dump(),
            ", expected [begin, end]");
  for (size_t i = 0; i < 2; ++i) {
    uint64_t x = 0;
    const std::string bad = as_index(off[i], &x);
    RDD_CHECK(bad.empty(), who, ": data_offsets ", off.dump(), ": ", i == 0 ? "begin" : "end", " is ", bad);
    (i == 0 ? e.begin : e.end) = x;
  }
  RDD_CHECK(e.begin <= e.end, who, ": data_offsets [", e.begin, ", ", e.end, "] begin after end");
  RDD_CHECK(e.end <= data_size, who, ": data_offsets [", e.begin, ", ", e.end, "] run past the end of the data section (",
            data_size, " bytes; is the file truncated?)");
  RDD_CHECK(e.end - e.begin == nbytes, who, ": data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin,
            " bytes, but ", dts, " ", shape_str(e.shape), " needs ", nbytes);
  return e;
}

// Tracks object keys while nlohmann parses, so duplicate keys (which the format disallows and
// nlohmann would silently merge) can be refused.
struct DuplicateKeyFinder {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty())
          duplicate = parsed.get<std::string>();
        break;
      default: break;
    }
    return true;
  }
};

// The parts of a file to be written: a padded header and the host tensors in name order.
struct Serialized {
  std::string prefix;                // 8-byte length + header
  std::vector<Tensor> host_tensors;  // contiguous CPU tensors, NCHW, in header order
  uint64_t data_bytes = 0;
};

Serialized prepare(const std::map<std::string, Tensor>& tensors, const std::map<std::string, std::string>& metadata,
                   const char* who) {
  Serialized s;
  json header = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header[kMetadataKey] = std::move(m);
  }
  for (const auto& [name, t] : tensors) {  // std::map: name order
    RDD_CHECK(name != kMetadataKey, who, ": a tensor cannot be named '", kMetadataKey, "'");
    RDD_CHECK(t.defined(), who, ": tensor '", name, "' is undefined");
    Tensor host = t.device().is_cpu() ? t : t.to(Device::cpu());
    if (host.ndim() == 4 && host.layout() == Layout::NHWC) host = host.to_layout(Layout::NCHW);
    const uint64_t begin = s.data_bytes, end = begin + host.nbytes();
    json shape = json::array();
    for (int64_t d : host.shape()) shape.push_back(d);
    header[name] = {{"dtype", safetensors_dtype_name(host.dtype())}, {"shape", shape}, {"data_offsets", {begin, end}}};
    s.data_bytes = end;
    s.host_tensors.push_back(host);
  }
  std::string text;
  try {
    text = header.dump();  // std::map-backed object: keys sorted
  } catch (const json::exception& e) {
    fail(who, ": tensor names and metadata must be valid UTF-8 (", e.what(), ")");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  const uint64_t n = text.size();
  s.prefix.resize(8);
  std::memcpy(s.prefix.data(), &n, 8);
  s.prefix += text;
  return s;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& what) {
  RDD_CHECK(size >= 8, what, ": file is ", size, " bytes, too short for the 8-byte header length (truncated?)");
  const uint64_t header_len = load_u64_le(data);
  RDD_CHECK(header_len <= kMaxHeaderBytes, what, ": header length ", header_len, " exceeds the format's limit of ",
            kMaxHeaderBytes, " bytes (not a safetensors file?)");
  RDD_CHECK(header_len <= size - 8, what, ": header length ", header_len, " runs past the end of the file (",
            size, " bytes; truncated?)");
  RDD_CHECK(header_len >= 2 && data[8] == '{', what, ": header does not start with '{' (not a safetensors file?)");
  const char* hbegin = reinterpret_cast<const char*>(data + 8);
  const uint64_t data_size = size - 8 - header_len;
  const uint8_t* payload = data + 8 + header_len;

  json root;
  DuplicateKeyFinder dups;
  try {
    root = json::parse(hbegin, hbegin + header_len, std::ref(dups));
  } catch (const json::exception& e) {
    fail(what, ": header is not valid JSON: ", e.what());
  }
  RDD_CHECK(root.is_object(), what, ": header is a JSON ", root.type_name(), ", expected an object");
  RDD_CHECK(dups.duplicate.empty(), what, ": header has the key '", dups.duplicate, "' more than once");

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [name, v] : root.items()) {
    if (name == kMetadataKey) {
      RDD_CHECK(v.is_object(), what, ": '", kMetadataKey, "' is a JSON ", v.type_name(), ", expected an object of strings");
      for (const auto& [k, mv] : v.items()) {
        RDD_CHECK(mv.is_string(), what, ": metadata '", k, "' is a JSON ", mv.type_name(), ", expected a string");
        out.metadata[k] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(what, name, v, data_size));
  }

  // The tensors must tile the data section exactly: no overlaps, no holes, nothing after the last.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : by_offset) {
    RDD_CHECK(e->begin >= cursor, what, ": tensor '", e->name, "' [", e->begin, ", ", e->end, ") overlaps tensor '",
              prev ? prev->name : "", "' [", prev ? prev->begin : 0, ", ", cursor, ")");
    RDD_CHECK(e->begin == cursor, what, ": gap in the data section: bytes [", cursor, ", ", e->begin,
              ") before tensor '", e->name, "' belong to no tensor");
    cursor = e->end;
    prev = e;
  }
  RDD_CHECK(cursor == data_size, what, ": gap in the data section: bytes [", cursor, ", ", data_size,
            ") at its end belong to no tensor", prev ? " (the last is '" + prev->name + "')" : std::string());

  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw(), payload + e.begin, size_t(e.end - e.begin));
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  std::error_code ec;
  RDD_CHECK(!std::filesystem::is_directory(path, ec), "cannot read ", path, ": it is a directory");
  std::ifstream f(path, std::ios::binary);
  RDD_CHECK(f.is_open(), "cannot open ", path, ": ", errno_text(errno));
  uint8_t len_bytes[8] = {};
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  RDD_CHECK(f && f.gcount() == 8, path, ": too short for the 8-byte header length (truncated?)");
  const uint64_t header_len = load_u64_le(len_bytes);
  RDD_CHECK(header_len <= kMaxHeaderBytes, path, ": header length ", header_len, " exceeds the format's limit of ",
            kMaxHeaderBytes, " bytes (not a safetensors file?)");
  std::string header(size_t(header_len), '\0');
  f.read(header.data(), std::streamsize(header_len));
  RDD_CHECK(f && uint64_t(f.gcount()) == header_len, path, ": header length ", header_len,
            " runs past the end of the file (truncated?)");
  json root;
  try {
    root = json::parse(header);
  } catch (const json::exception& e) {
    fail(path, ": header is not valid JSON: ", e.what());
  }
  RDD_CHECK(root.is_object(), path, ": header is a JSON ", root.type_name(), ", expected an object");
  std::map<std::string, std::string> out;
  if (!root.contains(kMetadataKey)) return out;
  const json& v = root[kMetadataKey];
  RDD_CHECK(v.is_object(), path, ": '", kMetadataKey, "' is a JSON ", v.type_name(), ", expected an object of strings");
  for (const auto& [k, mv] : v.items()) {
    RDD_CHECK(mv.is_string(), path, ": metadata '", k, "' is a JSON ", mv.type_name(), ", expected a string");
    out[k] = mv.get<std::string>();
  }
  return out;
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::error_code ec;
  RDD_CHECK(!std::filesystem::is_directory(path, ec), "cannot read ", path, ": it is a directory");
  std::ifstream f(path, std::ios::binary);
  RDD_CHECK(f.is_open(), "cannot open ", path, ": ", errno_text(errno));
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  RDD_CHECK(f && size >= 0, "cannot read ", path, ": cannot determine its size");
  f.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes;
  try {
    bytes.resize(static_cast<size_t>(size));
  } catch (const std::bad_alloc&) {
    fail("cannot read ", path, ": ", size, " bytes do not fit in memory");
  }
  if (size > 0) f.read(reinterpret_cast<char*>(bytes.data()), size);
  RDD_CHECK(f && f.gcount() == size, "cannot read ", path, ": ", errno_text(errno));
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

std::string serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  const Serialized s = prepare(tensors, metadata, "serialize_safetensors");
  std::string out = s.prefix;
  out.reserve(s.prefix.size() + s.data_bytes);
  for (const Tensor& t : s.host_tensors) out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const Serialized s = prepare(tensors, metadata, ("write_safetensors " + path).c_str());
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";

  FILE* f = std::fopen(tmp.c_str(), "wb");
  RDD_CHECK(f, "write_safetensors: cannot create ", tmp, " (to write ", path, "): ", errno_text(errno));
  // On any failure from here on: close, remove the temporary file, report the path and the reason.
  auto abandon = [&](const char* step, int err) {
    if (f) std::fclose(f);
    f = nullptr;
    std::remove(tmp.c_str());
    fail("write_safetensors: cannot write ", path, " (", step, " ", tmp, "): ", errno_text(err));
  };
  auto put = [&](const void* p, size_t n) {
    if (n > 0 && std::fwrite(p, 1, n, f) != n) abandon("writing", errno);
  };
  put(s.prefix.data(), s.prefix.size());
  for (const Tensor& t : s.host_tensors) put(t.raw(), t.nbytes());
  if (std::fflush(f) != 0) abandon("flushing", errno);
  if (::fsync(::fileno(f)) != 0) abandon("syncing", errno);
  const int closed = std::fclose(f);
  f = nullptr;
  if (closed != 0) abandon("closing", errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) abandon("renaming", errno);

  // Make the rename itself durable. Filesystems that cannot sync a directory say EINVAL: nothing to do.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  RDD_CHECK(dfd >= 0, "write_safetensors: wrote ", path, " but cannot open its directory to sync it: ", errno_text(errno));
  const int synced = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  RDD_CHECK(synced == 0 || err == EINVAL, "write_safetensors: wrote ", path, " but cannot sync its directory: ",
            errno_text(err));
}

}  // namespace rdd
