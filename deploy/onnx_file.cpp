#include "deploy/onnx_file.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace rdd::deploy {

namespace {
std::string elem_name(int t) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return "float32";
    case onnx::TensorProto::INT64: return "int64";
    case onnx::TensorProto::INT32: return "int32";
    case onnx::TensorProto::FLOAT16: return "float16";
    case onnx::TensorProto::UINT8: return "uint8";
    default: return detail::concat("type ", t);
  }
}

OnnxTensorInfo tensor_info(const onnx::ValueInfoProto& v) {
  OnnxTensorInfo i;
  i.name = v.name();
  const onnx::TypeProto_Tensor& t = v.type().tensor_type();
  i.elem_type = elem_name(t.elem_type());
  for (const auto& d : t.shape().dim())
    i.dims.push_back(d.has_dim_value() ? std::to_string(d.dim_value()) : d.has_dim_param() ? d.dim_param() : "?");
  return i;
}
}  // namespace

OnnxFileInfo parse_onnx_model(const std::string& bytes, const std::string& what) {
  onnx::ModelProto m;
  RDD_CHECK(m.ParseFromString(bytes), what, ": not an ONNX model (protobuf cannot parse its ", bytes.size(),
            " bytes)");
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    fail(what, ": the ONNX checker refuses it: ", e.what());
  }
  OnnxFileInfo info;
  for (const auto& p : m.metadata_props()) info.metadata[p.key()] = p.value();
  for (const auto& o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") info.opset = int(o.version());
  info.producer = m.producer_name() + " " + m.producer_version();
  for (const auto& v : m.graph().input()) info.inputs.push_back(tensor_info(v));
  for (const auto& v : m.graph().output()) info.outputs.push_back(tensor_info(v));
  for (const auto& n : m.graph().node()) ++info.op_counts[n.op_type()];
  info.initializers = m.graph().initializer_size();
  return info;
}

OnnxFileInfo read_onnx_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  RDD_CHECK(f.good(), path, ": cannot open the ONNX model");
  std::ostringstream bytes;
  bytes << f.rdbuf();
  RDD_CHECK(!f.bad(), path, ": cannot read the ONNX model");
  return parse_onnx_model(bytes.str(), path);
}

}  // namespace rdd::deploy
