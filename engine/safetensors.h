// safetensors: the file format of rdd's weights and checkpoints, readable by PyTorch and anyone else.
//
//   [8 bytes: N, little-endian u64][N bytes: JSON header][data]
//   header = {"__metadata__": {"key": "value", ...},
//             "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
// Offsets are relative to the start of the data section; tensors are row-major, little-endian.
//
// The reader trusts nothing: a truncated file, a header length past the end, a header that is not
// JSON, offsets out of range or inconsistent with dtype × shape, overlapping tensors, gaps, or an
// unknown dtype are each refused with rdd::Error naming the file and the problem — never a crash or
// an out-of-bounds read.
//
// Dtypes: F32, F64, BF16, F16, I32, I64, U8 (the others in the format are refused by name).
// 4-D NHWC tensors are written in logical NCHW order (the format has no layout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "engine/tensor.h"

namespace rdd {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;  // CPU tensors
  std::map<std::string, std::string> metadata;
};

// `what` names the source in error messages (usually the path).
SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& what);
SafetensorsFile read_safetensors(const std::string& path);
// The metadata alone (`__metadata__`), reading only the header: cheap for a file of any size.
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);

// Serialise to bytes (tensors on any device are copied to the host).
std::string serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});
// Atomic write: a temporary file in the same directory, fsync, rename over `path`, fsync the
// directory. A crash at any point leaves either the old file or the new one, never a torn one.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace rdd
