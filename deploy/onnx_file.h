// Reading an .onnx file back: what `rdd export --check` and the tests need to know about a model without
// running it — its metadata_props, opset, inputs and outputs, and how many nodes of each op it has. The
// file is parsed with protobuf and validated by the ONNX checker; anything else is refused naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rdd::deploy {

struct OnnxTensorInfo {
  std::string name;
  std::string elem_type;         // "float32", "int64", ...
  std::vector<std::string> dims;  // a number, a dimension name, or "?"
};

struct OnnxFileInfo {
  std::map<std::string, std::string> metadata;
  int opset = 0;
  std::string producer;
  std::vector<OnnxTensorInfo> inputs, outputs;
  std::map<std::string, int> op_counts;  // node op_type → count
  int64_t initializers = 0;
};

OnnxFileInfo read_onnx_file(const std::string& path);
// The same from the bytes of a serialized model; `what` names it in messages.
OnnxFileInfo parse_onnx_model(const std::string& bytes, const std::string& what);

}  // namespace rdd::deploy
