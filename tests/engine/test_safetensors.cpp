#include "engine/safetensors.h"

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sys/resource.h>

#include "engine/params.h"
#include "engine/rng.h"
#include "harness.h"

using namespace rdd;
namespace fs = std::filesystem;

namespace {

// The file bytes of a header (JSON text, used as is) and a data section.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

// Parses from a heap block of exactly bytes.size() bytes, so that valgrind or ASan see any read past it.
SafetensorsFile parse_exact(const std::string& bytes, const std::string& what = "bad.safetensors") {
  std::unique_ptr<uint8_t[]> block(new uint8_t[bytes.size() ? bytes.size() : 1]);
  if (!bytes.empty()) std::memcpy(block.get(), bytes.data(), bytes.size());
  return parse_safetensors(block.get(), bytes.size(), what);
}

// The parser refuses `bytes` with rdd::Error, the message naming the source and containing `expect`.
void check_rejected(const std::string& bytes, const std::string& expect) {
  INFO("expecting an error containing \"" << expect << "\"");
  try {
    parse_exact(bytes);
    FAIL_CHECK("accepted a malformed file");
  } catch (const Error& e) {
    const std::string m = e.what();
    INFO("message: " << m);
    CHECK(m.find(expect) != std::string::npos);
    CHECK(m.find("bad.safetensors") != std::string::npos);
  }
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The bytes of a tensor, as rdd would write them (4-D NHWC reordered to NCHW).
std::string logical_bytes(const Tensor& t) {
  Tensor h = t.device().is_cpu() ? t : t.to(Device::cpu());
  if (h.ndim() == 4 && h.layout() == Layout::NHWC) h = h.to_layout(Layout::NCHW);
  return std::string(static_cast<const char*>(h.raw()), h.nbytes());
}

void check_same_tensor(const Tensor& got, const Tensor& want, const std::string& name) {
  INFO("tensor " << name << ": got " << got.desc() << ", want " << want.desc());
  REQUIRE(got.defined());
  CHECK(got.dtype() == want.dtype());
  CHECK(got.shape() == want.shape());
  CHECK(got.layout() == Layout::NCHW);
  CHECK(got.device().is_cpu());
  CHECK(logical_bytes(got) == logical_bytes(want));
}

Tensor random_ints(const Shape& shape, DType dtype, int64_t lo, int64_t hi, uint64_t seed) {
  Tensor t = Tensor::empty(shape, dtype);
  fill_randint(t, lo, hi, seed, 0x5afe);
  return t;
}

// Full 64-bit patterns (fill_randint draws 32 bits).
Tensor random_i64(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::i64);
  PhiloxStream rng(seed, 0x164);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint64_t hi = rng.next_u32(), lo = rng.next_u32();
    t.data<int64_t>()[i] = int64_t((hi << 32) | lo);
  }
  return t;
}

// Random tensors of every dtype and a few ranks, as a round trip would see them.
std::map<std::string, Tensor> random_tensors(uint64_t seed) {
  std::map<std::string, Tensor> m;
  m["conv.weight"] = test::random_tensor({4, 3, 3, 3}, seed + 1);
  m["f64.vector"] = test::random_normal({17}, seed + 2, 0.0, 1e3, DType::f64);
  m["bf16.matrix"] = test::random_tensor({5, 9}, seed + 3, -4.0, 4.0, DType::bf16);
  m["f16.matrix"] = test::random_tensor({3, 11}, seed + 4, -100.0, 100.0, DType::f16);
  m["i32.labels"] = random_ints({2, 7, 5}, DType::i32, -2000000000, 2000000000, seed + 5);
  m["i64.counter"] = random_i64({}, seed + 6);
  m["i64.ids"] = random_i64({6}, seed + 7);
  m["u8.image"] = random_ints({1, 3, 4, 6}, DType::u8, 0, 256, seed + 8);
  m["scalar"] = test::random_tensor({}, seed + 9);
  m["empty"] = Tensor::empty({3, 0, 2});
  m["empty.bf16"] = Tensor::empty({0}, DType::bf16);
  m["feature.nhwc"] = test::random_tensor({2, 5, 3, 4}, seed + 10).to_layout(Layout::NHWC);
  return m;
}

const std::map<std::string, std::string> kMetadata = {
    {"format", "pt"},
    {"rdd.iteration", "12345"},
    {"quotes \"and\" \\slashes\\", "line\nbreak\ttab"},
    {"unicode", "gr\u00fc\u00dfe \u2713"},
    {"empty", ""},
};

// The fixed content shared with scripts/check_safetensors_reader.py (see its docstring): values are
// formulas of the flat logical index i.
struct Expected {
  const char* name;
  DType dtype;
  Shape shape;
};
const Expected kExpected[] = {
    {"a_f32_4d", DType::f32, {2, 3, 4, 5}}, {"b_f64_1d", DType::f64, {37}},     {"c_bf16_2d", DType::bf16, {3, 7}},
    {"d_f16_3d", DType::f16, {2, 3, 5}},    {"e_i32_1d", DType::i32, {50}},     {"f_i64_0d", DType::i64, {}},
    {"g_i64_2d", DType::i64, {4, 9}},       {"h_u8_1d", DType::u8, {300}},      {"i_f32_empty", DType::f32, {3, 0, 2}},
    {"nhwc_f32", DType::f32, {2, 3, 4, 5}},
};
const std::map<std::string, std::string> kExpectedMetadata = {
    {"rdd.check", "safetensors-reader-v1"}, {"unicode", "gr\u00fc\u00dfe \u2713"}, {"empty", ""}};

Tensor formula_tensor(DType dtype, const Shape& shape) {
  Tensor t = Tensor::empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (dtype) {
      case DType::f32: t.data<float>()[i] = float(double(i - 17) / 3.0); break;
      case DType::f64: t.data<double>()[i] = double(i - 17) / 3.0; break;
      case DType::bf16: t.data<bf16>()[i] = bf16(float(double(i % 64 - 32) / 4.0)); break;
      case DType::f16: t.data<f16>()[i] = f16(float(double(i % 200 - 100) / 16.0)); break;
      case DType::i32: t.data<int32_t>()[i] = int32_t(i * 7919 - 50000); break;
      case DType::i64: t.data<int64_t>()[i] = i * (int64_t(1) << 40) - 3; break;
      case DType::u8: t.data<uint8_t>()[i] = uint8_t((i * 37 + 11) % 256); break;
    }
  }
  return t;
}

std::map<std::string, Tensor> expected_tensors(bool nhwc_in_memory) {
  std::map<std::string, Tensor> m;
  for (const Expected& e : kExpected) m[e.name] = formula_tensor(e.dtype, e.shape);
  if (nhwc_in_memory) m["nhwc_f32"] = m["nhwc_f32"].to_layout(Layout::NHWC);
  return m;
}

// A valid file with a few tensors (the fuzz and truncation seed).
std::string valid_file() {
  std::map<std::string, Tensor> m;
  m["a"] = test::random_tensor({2, 3}, 11);
  m["b"] = random_ints({5}, DType::i64, -100, 100, 12);
  m["c"] = test::random_tensor({2, 2}, 13, -1.0, 1.0, DType::bf16);
  m["d"] = Tensor::empty({0, 4});
  return serialize_safetensors(m, {{"k", "v"}});
}

uint64_t header_length(const std::string& file) {
  uint64_t n;
  std::memcpy(&n, file.data(), 8);
  return n;
}

bool only_file_in(const std::string& dir, const std::string& name) {
  int count = 0;
  bool found = false;
  for (const auto& entry : fs::directory_iterator(dir)) {
    ++count;
    found = found || entry.path().filename() == name;
  }
  return count == 1 && found;
}

}  // namespace

TEST_CASE("safetensors round trip: every dtype, 0-d/1-d/4-d, empty, NHWC, metadata") {
  const std::map<std::string, Tensor> tensors = random_tensors(2024);
  const std::string bytes = serialize_safetensors(tensors, kMetadata);
  const SafetensorsFile back = parse_exact(bytes, "memory");
  CHECK(back.metadata == kMetadata);
  REQUIRE(back.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) check_same_tensor(back.tensors.at(name), t, name);

  // The same through a file; a second serialisation of what was read is byte-identical.
  const std::string dir = test::temp_dir("safetensors-roundtrip");
  const std::string path = dir + "/model.safetensors";
  write_safetensors(path, tensors, kMetadata);
  CHECK(read_bytes(path) == bytes);
  const SafetensorsFile from_file = read_safetensors(path);
  CHECK(from_file.metadata == kMetadata);
  for (const auto& [name, t] : tensors) check_same_tensor(from_file.tensors.at(name), t, name);
  CHECK(serialize_safetensors(from_file.tensors, from_file.metadata) == bytes);

  // No metadata, no tensors: still a valid file.
  const SafetensorsFile empty = parse_exact(serialize_safetensors({}, {}));
  CHECK(empty.tensors.empty());
  CHECK(empty.metadata.empty());
}

TEST_CASE("safetensors writer layout: sorted keys, space padding to 8 bytes, name order, contiguous") {
  std::map<std::string, Tensor> m;
  m["b"] = Tensor::from_vector<float>({1.5f, -2.0f}, {2});
  m["a"] = Tensor::from_vector<int32_t>({7, -8, 9}, {3, 1});
  m["c"] = Tensor::from_vector<uint8_t>({200}, {});
  const std::string bytes = serialize_safetensors(m, {{"z", "last"}, {"k", "v"}});
  const std::string json =
      R"({"__metadata__":{"k":"v","z":"last"},)"
      R"("a":{"data_offsets":[0,12],"dtype":"I32","shape":[3,1]},)"
      R"("b":{"data_offsets":[12,20],"dtype":"F32","shape":[2]},)"
      R"("c":{"data_offsets":[20,21],"dtype":"U8","shape":[]}})";
  const uint64_t n = header_length(bytes);
  CHECK(n % 8 == 0);
  CHECK(n >= json.size());
  CHECK(n < json.size() + 8);
  CHECK(bytes.substr(8, json.size()) == json);
  CHECK(bytes.substr(8 + json.size(), n - json.size()) == std::string(n - json.size(), ' '));
  REQUIRE(bytes.size() == 8 + n + 21);
  const std::string data = bytes.substr(8 + n);
  int32_t a[3];
  float b[2];
  std::memcpy(a, data.data(), 12);
  std::memcpy(b, data.data() + 12, 8);
  CHECK(a[0] == 7);
  CHECK(a[1] == -8);
  CHECK(a[2] == 9);
  CHECK(b[0] == 1.5f);
  CHECK(b[1] == -2.0f);
  CHECK(uint8_t(data[20]) == 200);
}

TEST_CASE("safetensors: an NHWC tensor is stored and read back in logical NCHW order") {
  const Tensor nchw = test::random_tensor({2, 3, 4, 5}, 77);
  const Tensor nhwc = nchw.to_layout(Layout::NHWC);
  const std::string bytes = serialize_safetensors({{"x", nhwc}});
  CHECK(bytes == serialize_safetensors({{"x", nchw}}));
  const Tensor back = parse_exact(bytes).tensors.at("x");
  CHECK(back.layout() == Layout::NCHW);
  CHECK(back.shape() == Shape{2, 3, 4, 5});
  CHECK(back.to_vector<float>() == nchw.to_vector<float>());
  // Element (n=1, c=2, h=3, w=4), the last one, and an inner one (0, 1, 2, 3).
  CHECK(back.at<float>(((1 * 3 + 2) * 4 + 3) * 5 + 4) == nchw.at<float>(119));
  CHECK(back.at<float>(((0 * 3 + 1) * 4 + 2) * 5 + 3) == nchw.at<float>(33));
}

TEST_CASE("safetensors: a ParamStore state_dict (views into one flat buffer) round-trips by name") {
  ParamStore store;
  store.add_parameter("conv.weight", {4, 3, 3, 3});
  store.add_parameter("bn.weight", {4});
  store.add_buffer("bn.running_var", {4});
  store.add_buffer("bn.num_batches_tracked", {}, DType::i64);
  store.materialize(Device::cpu());
  for (Param* p : store.parameters()) p->value.copy_from(test::random_tensor(p->shape, uint64_t(p->offset) + 1));
  store.at("bn.running_var").value.copy_from(test::random_tensor({4}, 99, 0.5, 2.0));
  store.at("bn.num_batches_tracked").value.data<int64_t>()[0] = 1234567;

  const SafetensorsFile f = parse_exact(serialize_safetensors(store.state_dict(), {{"iteration", "7"}}));
  REQUIRE(f.tensors.size() == 4);
  for (const Param& p : store.entries()) check_same_tensor(f.tensors.at(p.name), p.value, p.name);
  CHECK(f.tensors.at("bn.weight").numel() == 4);  // the slice, not the rest of the flat buffer

  ParamStore other;
  other.add_parameter("conv.weight", {4, 3, 3, 3});
  other.add_parameter("bn.weight", {4});
  other.add_buffer("bn.running_var", {4});
  other.add_buffer("bn.num_batches_tracked", {}, DType::i64);
  other.materialize(Device::cpu());
  for (auto& [name, t] : other.state_dict()) t.copy_from(f.tensors.at(name));  // loading a checkpoint
  CHECK(other.flat_values().to_vector<float>() == store.flat_values().to_vector<float>());
  CHECK(other.at("bn.num_batches_tracked").value.to_vector<int64_t>()[0] == 1234567);
}

TEST_CASE("safetensors writer refuses what the format cannot hold") {
  CHECK_THROWS_WITH_AS(serialize_safetensors({{"w", Tensor()}}), doctest::Contains("'w' is undefined"), Error);
  CHECK_THROWS_WITH_AS(serialize_safetensors({{"__metadata__", Tensor::zeros({1})}}),
                       doctest::Contains("cannot be named '__metadata__'"), Error);
  CHECK_THROWS_WITH_AS(serialize_safetensors({{std::string("bad\xff"), Tensor::zeros({1})}}),
                       doctest::Contains("valid UTF-8"), Error);
}

TEST_CASE("safetensors reader: truncated files are refused at every cut") {
  const std::string file = valid_file();
  const uint64_t n = header_length(file);
  REQUIRE(file.size() > 8 + n + 8);
  for (size_t cut : {size_t(0), size_t(1), size_t(7)}) check_rejected(file.substr(0, cut), "too short");
  for (size_t cut : {size_t(8), size_t(9), size_t(8 + n / 2), size_t(8 + n - 1)})
    check_rejected(file.substr(0, cut), "runs past the end of the file");
  // Inside the data: the last tensor in the data section ('c', name order) runs past the end.
  for (size_t cut : {file.size() - 1, file.size() - 5}) {
    check_rejected(file.substr(0, cut), "run past the end of the data section");
    check_rejected(file.substr(0, cut), "tensor 'c'");
  }
  // Cut just after the header: every non-empty tensor is missing.
  check_rejected(file.substr(0, 8 + n), "run past the end of the data section");
  CHECK_NOTHROW(parse_exact(file));
}

TEST_CASE("safetensors reader: header length and framing") {
  std::string huge = make_file("{}", "");
  const uint64_t big = uint64_t(1) << 40;
  std::memcpy(huge.data(), &big, 8);
  check_rejected(huge, "exceeds the format's limit");
  std::string past = make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x");
  const uint64_t too_long = past.size();  // > size - 8
  std::memcpy(past.data(), &too_long, 8);
  check_rejected(past, "runs past the end of the file");
  check_rejected(make_file("", ""), "does not start with '{'");
  check_rejected(make_file(" {}", ""), "does not start with '{'");
  check_rejected(make_file("[1, 2]", ""), "does not start with '{'");
  // Padding with spaces (and an empty header object) is fine.
  CHECK(parse_exact(make_file("{}      ", "")).tensors.empty());
}

TEST_CASE("safetensors reader: invalid JSON and wrong JSON types are refused by name") {
  const std::string ok_entry = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  const std::string data8(8, '\x11');
  CHECK(parse_exact(make_file("{\"x\":{" + ok_entry + "}}", data8)).tensors.at("x").numel() == 2);

  check_rejected(make_file(R"({"x": {"dtype": "F32", )", data8), "not valid JSON");
  check_rejected(make_file(R"({"x": 1} trailing)", data8), "not valid JSON");
  check_rejected(make_file("{\"x\":{" + ok_entry + "}}\x01", data8), "not valid JSON");
  check_rejected(make_file("{\"x\":{\"dtype\":\"F\xff\",\"shape\":[2],\"data_offsets\":[0,8]}}", data8),
                 "not valid JSON");  // not UTF-8
  check_rejected(make_file(R"({"x": 5})", data8), "tensor 'x': entry is a JSON number");
  check_rejected(make_file(R"({"x": {"shape":[2],"data_offsets":[0,8]}})", data8), "tensor 'x': entry has no 'dtype'");
  check_rejected(make_file(R"({"x": {"dtype":"F32","data_offsets":[0,8]}})", data8), "tensor 'x': entry has no 'shape'");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[2]}})", data8), "tensor 'x': entry has no 'data_offsets'");
  check_rejected(make_file(R"({"x": {"dtype":5,"shape":[2],"data_offsets":[0,8]}})", data8),
                 "tensor 'x': 'dtype' is a JSON number");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":"2","data_offsets":[0,8]}})", data8),
                 "tensor 'x': 'shape' is a JSON string");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", data8),
                 "dimension 0 is not an integer");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", data8),
                 "dimension 0 is not an integer");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[1,-2],"data_offsets":[0,8]}})", data8),
                 "dimension 1 is negative");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[true],"data_offsets":[0,8]}})", data8),
                 "dimension 0 is a JSON boolean");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[2],"data_offsets":[0]}})", data8),
                 "tensor 'x': 'data_offsets' is [0], expected [begin, end]");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[2],"data_offsets":{"b":0}}})", data8),
                 "expected [begin, end]");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[2],"data_offsets":["0",8]}})", data8),
                 "begin is a JSON string");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", data8), "end is negative");
  check_rejected(make_file(R"({"__metadata__": ["a"]})", ""), "'__metadata__' is a JSON array");
  check_rejected(make_file(R"({"__metadata__": {"k": 1}})", ""), "metadata 'k' is a JSON number");
  check_rejected(make_file(R"({"__metadata__": {"k": {"nested": "x"}}})", ""), "metadata 'k' is a JSON object");
  check_rejected(make_file("{\"x\":{" + ok_entry + "},\"x\":{" + ok_entry + "}}", data8), "'x' more than once");
  check_rejected(make_file(R"({"__metadata__": {"k": "a", "k": "b"}})", ""), "'k' more than once");
}

TEST_CASE("safetensors reader: dtypes, offsets and shapes must agree") {
  const std::string data8(8, '\x22');
  check_rejected(make_file(R"({"x": {"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", data8),
                 "unsupported dtype 'F8_E4M3' for tensor 'x'");
  check_rejected(make_file(R"({"x": {"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}})", data8),
                 "unsupported dtype 'BOOL' for tensor 'x'");
  check_rejected(make_file(R"({"x": {"dtype":"f32","shape":[2],"data_offsets":[0,8]}})", data8),
                 "unsupported dtype 'f32' for tensor 'x'");
  // Out of range, reversed, inconsistent with dtype × shape.
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[250],"data_offsets":[0,1000]}})", data8),
                 "tensor 'x': data_offsets [0, 1000] run past the end of the data section (8 bytes");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data8),
                 "run past the end of the data section");
  check_rejected(make_file(R"({"x": {"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", data8), "begin after end");
  check_rejected(make_file(R"({"x": {"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", data8),
                 "tensor 'x': data_offsets [0, 4] hold 4 bytes, but F32 [2] needs 8");
  check_rejected(make_file(R"({"x": {"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", data8), "needs 16");
  check_rejected(make_file(R"({"x": {"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}})", data8), "needs 12");
  // Overflow-safe sizes: element counts and byte counts past 64 bits.
  check_rejected(make_file(R"({"x": {"dtype":"U8","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", data8),
                 "more elements than fit in 64 bits");
  check_rejected(make_file(R"({"x": {"dtype":"U8","shape":[4611686018427387904,4,0],"data_offsets":[0,0]}})", data8),
                 "more elements than fit in 64 bits");
  check_rejected(make_file(R"({"x": {"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", data8),
                 "more bytes than fit in 64 bits");
  check_rejected(make_file(R"({"x": {"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,8]}})", data8),
                 "dimension 0 is too large");
  check_rejected(make_file(R"({"x": {"dtype":"U8","shape":[8],"data_offsets":[0,18446744073709551616]}})", data8),
                 "end is not an integer");  // past u64: JSON parses it as a float
}

TEST_CASE("safetensors reader: tensors must tile the data section (no overlap, no gap)") {
  const std::string a = R"("a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  // Overlap.
  check_rejected(make_file("{" + a + R"(, "b": {"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, 'x')),
                 "tensor 'b' [4, 12) overlaps tensor 'a' [0, 8)");
  check_rejected(make_file("{" + a + R"(, "b": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(8, 'x')),
                 "overlaps");
  check_rejected(make_file("{" + a + R"(, "e": {"dtype":"F32","shape":[0],"data_offsets":[4,4]}})", std::string(8, 'x')),
                 "tensor 'e' [4, 4) overlaps tensor 'a'");
  // A hole between tensors, before the first one, and after the last one.
  check_rejected(make_file("{" + a + R"(, "b": {"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", std::string(20, 'x')),
                 "gap in the data section: bytes [8, 12) before tensor 'b'");
  check_rejected(make_file(R"({"b": {"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, 'x')),
                 "gap in the data section: bytes [0, 4) before tensor 'b'");
  check_rejected(make_file("{" + a + "}", std::string(12, 'x')), "bytes [8, 12) at its end belong to no tensor");
  check_rejected(make_file("{}", "xyz"), "bytes [0, 3) at its end");
  // Tensors stored out of name order, and empty tensors at the boundaries, are fine.
  const SafetensorsFile f = parse_exact(
      make_file(R"({"z": {"dtype":"U8","shape":[2],"data_offsets":[0,2]}, "a": {"dtype":"U8","shape":[1],"data_offsets":[2,3]},)"
                R"( "e0": {"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}, "e1": {"dtype":"I64","shape":[0],"data_offsets":[3,3]}})",
                "\x01\x02\x03"));
  CHECK(f.tensors.at("z").to_vector<int32_t>() == std::vector<int32_t>{1, 2});
  CHECK(f.tensors.at("a").to_vector<int32_t>() == std::vector<int32_t>{3});
  CHECK(f.tensors.at("e0").shape() == Shape{0, 3});
  CHECK(f.tensors.at("e1").dtype() == DType::i64);
}

TEST_CASE("safetensors reader: a few thousand corrupted files parse or throw rdd::Error, never crash") {
  const std::string file = valid_file();
  const uint64_t n = header_length(file);
  PhiloxStream rng(0xf022, 0x5afe);
  int parsed = 0, refused = 0;
  const char* header_chars = "{}[],:\"0123456789-.eE aFUIB_x\\";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string m = file;
    const int kind = int(rng.next_int(0, 5));
    if (kind == 0) {  // truncate anywhere
      m.resize(size_t(rng.next_int(0, int64_t(m.size()))));
    } else if (kind == 1) {  // flip bits anywhere
      for (int k = int(rng.next_int(1, 5)); k > 0; --k)
        m[size_t(rng.next_int(0, int64_t(m.size())))] ^= char(1 << rng.next_int(0, 8));
    } else if (kind == 2) {  // replace header characters with JSON-ish ones
      for (int k = int(rng.next_int(1, 4)); k > 0; --k)
        m[size_t(8 + rng.next_int(0, int64_t(n)))] = header_chars[rng.next_int(0, int64_t(std::strlen(header_chars)))];
    } else if (kind == 3) {  // change the header length
      const uint64_t len = uint64_t(rng.next_int(0, int64_t(m.size()) + 16));
      std::memcpy(m.data(), &len, 8);
    } else {  // a digit in the header changes (offsets, shapes)
      std::vector<size_t> digits;
      for (size_t i = 8; i < 8 + n; ++i)
        if (m[i] >= '0' && m[i] <= '9') digits.push_back(i);
      m[digits[size_t(rng.next_int(0, int64_t(digits.size())))]] = char('0' + rng.next_int(0, 10));
      if (rng.next_int(0, 2)) m.resize(m.size() - size_t(rng.next_int(0, 9)));
    }
    try {
      const SafetensorsFile f = parse_exact(m);
      ++parsed;
      size_t total = 0;
      for (const auto& [name, t] : f.tensors) total += t.nbytes();
      CHECK(total <= m.size());
    } catch (const Error&) {
      ++refused;
    }
  }
  MESSAGE("fuzz: " << parsed << " parsed, " << refused << " refused");
  CHECK(parsed > 0);
  CHECK(refused > 0);
  CHECK(parsed + refused == 3000);
}

TEST_CASE("read_safetensors: missing files and directories are named") {
  const std::string dir = test::temp_dir("safetensors-missing");
  CHECK_THROWS_WITH_AS(read_safetensors(dir + "/nope.safetensors"),
                       doctest::Contains(("cannot open " + dir + "/nope.safetensors: No such file or directory").c_str()), Error);
  CHECK_THROWS_WITH_AS(read_safetensors(dir), doctest::Contains(("cannot read " + dir).c_str()), Error);
  const std::string path = dir + "/garbage.safetensors";
  std::ofstream(path) << "not a safetensors file at all";
  CHECK_THROWS_WITH_AS(read_safetensors(path), doctest::Contains((path + ": header length").c_str()), Error);
}

TEST_CASE("write_safetensors is atomic: replaces the old file, leaves no temporary, names the path") {
  const std::string dir = test::temp_dir("safetensors-atomic");
  const std::string path = dir + "/ckpt.safetensors";
  const Tensor v1 = test::random_tensor({3, 4}, 1);
  const Tensor v2 = test::random_tensor({5}, 2);
  write_safetensors(path, {{"w", v1}}, {{"version", "1"}});
  CHECK(only_file_in(dir, "ckpt.safetensors"));
  write_safetensors(path, {{"w", v2}, {"b", v1}}, {{"version", "2"}});
  CHECK(only_file_in(dir, "ckpt.safetensors"));
  const SafetensorsFile f = read_safetensors(path);
  CHECK(f.metadata.at("version") == "2");
  check_same_tensor(f.tensors.at("w"), v2, "w");
  check_same_tensor(f.tensors.at("b"), v1, "b");

  // A directory that does not exist, and a "directory" that is a file.
  const std::string missing = dir + "/no/such/dir/x.safetensors";
  CHECK_THROWS_WITH_AS(write_safetensors(missing, {{"w", v1}}), doctest::Contains(missing.c_str()), Error);
  CHECK_THROWS_WITH_AS(write_safetensors(path + "/x.safetensors", {{"w", v1}}),
                       doctest::Contains((path + "/x.safetensors").c_str()), Error);
  // A path that is a directory: the rename fails, the temporary is removed.
  fs::create_directory(dir + "/sub");
  CHECK_THROWS_WITH_AS(write_safetensors(dir + "/sub", {{"w", v1}}), doctest::Contains((dir + "/sub").c_str()), Error);
  CHECK(fs::is_empty(dir + "/sub"));
  fs::remove(dir + "/sub");
  CHECK(only_file_in(dir, "ckpt.safetensors"));
}

TEST_CASE("write_safetensors: a full disk (file size limit) fails cleanly and keeps the old file") {
  const std::string dir = test::temp_dir("safetensors-full");
  const std::string path = dir + "/ckpt.safetensors";
  const Tensor small = test::random_tensor({4}, 3);
  write_safetensors(path, {{"w", small}});
  const std::string before = read_bytes(path);

  // RLIMIT_FSIZE makes write() fail with EFBIG, as a full disk fails with ENOSPC (SIGXFSZ ignored).
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
  rlimit limited = saved;
  limited.rlim_cur = 16384;
  auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
  REQUIRE(setrlimit(RLIMIT_FSIZE, &limited) == 0);
  std::string message;
  try {
    write_safetensors(path, {{"w", test::random_tensor({64, 1024}, 4)}});
  } catch (const Error& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  INFO("message: " << message);
  CHECK(message.find("cannot write " + path) != std::string::npos);
  CHECK(message.find("File too large") != std::string::npos);
  CHECK(only_file_in(dir, "ckpt.safetensors"));
  CHECK(read_bytes(path) == before);
}

TEST_CASE("an independent Python reader (numpy) reads rdd's files") {
  const std::string dir = test::temp_dir("safetensors-python");
  const std::string path = dir + "/from_rdd.safetensors";
  write_safetensors(path, expected_tensors(/*nhwc_in_memory=*/true), kExpectedMetadata);
  const std::string cmd =
      test::python() + " " + test::source_path("scripts/check_safetensors_reader.py") + " " + path;
  std::string out;
  const int rc = test::run_command(cmd, &out);
  INFO(cmd << "\n" << out);
  CHECK(rc == 0);
  CHECK(out.find("ok: 10 tensors and 3 metadata entries match") != std::string::npos);

  // The check can fail: one changed value is caught.
  std::map<std::string, Tensor> wrong = expected_tensors(false);
  wrong["e_i32_1d"].data<int32_t>()[13] += 1;
  write_safetensors(path, wrong, kExpectedMetadata);
  std::string out_wrong;
  CHECK(test::run_command(cmd, &out_wrong) == 1);
  CHECK(out_wrong.find("e_i32_1d: 1 of 50 values differ, first at flat index 13") != std::string::npos);
}

TEST_CASE("rdd reads files written by the Python module (all dtypes)") {
  const std::string dir = test::temp_dir("safetensors-python-write");
  const std::string path = dir + "/from_python.safetensors";
  const std::string cmd =
      test::python() + " " + test::source_path("scripts/check_safetensors_reader.py") + " --write " + path;
  std::string out;
  const int rc = test::run_command(cmd, &out);
  INFO(cmd << "\n" << out);
  REQUIRE(rc == 0);
  const SafetensorsFile f = read_safetensors(path);
  CHECK(f.metadata == kExpectedMetadata);
  const std::map<std::string, Tensor> want = expected_tensors(false);
  CHECK(f.tensors.size() == want.size());
  for (const auto& [name, t] : want) {
    REQUIRE(f.tensors.count(name) == 1);
    check_same_tensor(f.tensors.at(name), t, name);
  }
  // Spot values, so a shared mistake in the formula helpers cannot hide: bf16 (i % 64 − 32)/4 at i=5.
  CHECK(f.tensors.at("c_bf16_2d").to_vector<float>()[5] == -6.75f);
  CHECK(f.tensors.at("f_i64_0d").to_vector<int64_t>()[0] == -3);
  CHECK(f.tensors.at("g_i64_2d").to_vector<int64_t>()[35] == 35 * (int64_t(1) << 40) - 3);
}

GPU_TEST_CASE("safetensors: GPU tensors (NCHW and NHWC) are written from the device") {
  const Tensor a = test::random_tensor({2, 3, 5, 7}, 5);
  const Tensor b = test::random_tensor({9}, 6, -1.0, 1.0, DType::bf16);
  std::map<std::string, Tensor> gpu = {{"a", a.to(Device::cuda(0))},
                                       {"a_nhwc", a.to(Device::cuda(0)).to_layout(Layout::NHWC)},
                                       {"b", b.to(Device::cuda(0))}};
  const SafetensorsFile f = parse_exact(serialize_safetensors(gpu));
  check_same_tensor(f.tensors.at("a"), a, "a");
  check_same_tensor(f.tensors.at("a_nhwc"), a, "a_nhwc");
  check_same_tensor(f.tensors.at("b"), b, "b");
  const std::string dir = test::temp_dir("safetensors-gpu");
  write_safetensors(dir + "/gpu.safetensors", gpu);
  check_same_tensor(read_safetensors(dir + "/gpu.safetensors").tensors.at("a_nhwc"), a, "a_nhwc from file");
}
