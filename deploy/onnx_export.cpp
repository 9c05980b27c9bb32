#include "deploy/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "deploy/onnx_graph_builder.h"

namespace rdd::deploy {

namespace {
// Protobuf refuses messages of 2 GiB or more; keep a margin for the graph and the metadata.
constexpr int64_t kMaxWeightBytes = (int64_t(2) << 30) - (int64_t(64) << 20);

std::string value_desc(const onnx::ValueInfoProto& v) {
  const onnx::TypeProto_Tensor& t = v.type().tensor_type();
  std::string s = v.name() + " " + (t.elem_type() == onnx::TensorProto::INT64 ? "int64" : "float32") + " [";
  for (int i = 0; i < t.shape().dim_size(); ++i) {
    const auto& d = t.shape().dim(i);
    if (i) s += ',';
    s += d.has_dim_value() ? std::to_string(d.dim_value()) : d.has_dim_param() ? d.dim_param() : "?";
  }
  return s + "]";
}
}  // namespace

int max_onnx_opset() {
  const auto& ranges = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto it = ranges.find("");
  RDD_CHECK(it != ranges.end(), "onnx export: the ONNX library has no default-domain operator set");
  return it->second.second;
}

OnnxExport export_onnx(const models::SegModel& model, const OnnxExportOptions& o, DeploymentInfo info) {
  const int newest = max_onnx_opset();
  RDD_CHECK(o.opset >= kMinOnnxOpset && o.opset <= newest, "--opset ", o.opset, ": rdd exports opsets ",
            kMinOnnxOpset, " to ", newest, " (Resize's align_corners mode and Clip's min/max inputs need ",
            kMinOnnxOpset, "; the ONNX library rdd was built with knows opsets up to ", newest, ")");
  int64_t weight_bytes = 0;
  for (const Param& p : model.params().entries()) weight_bytes += p.numel() * int64_t(dtype_size(p.dtype));
  RDD_CHECK(weight_bytes <= kMaxWeightBytes, "onnx export: ", model.name(), " (width ", model.options().width,
            ") has ", weight_bytes >> 20, " MiB of weights; one .onnx file holds under 2 GiB (protobuf's limit) and "
            "rdd does not write ONNX external data: export a smaller width");
  RDD_CHECK(model.params().materialized(), "onnx export: ", model.name(), " has no weights (params().materialize() "
            "and load them first)");

  onnx::ModelProto m;
  m.set_ir_version(onnx::IR_VERSION);
  m.set_producer_name("rdd");
  m.set_producer_version(RDD_VERSION);
  m.set_doc_string(model.name() + " (width " + std::to_string(model.options().width) +
                   "), eval mode, main head, exported by rdd");
  onnx::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(o.opset);
  onnx::GraphProto* graph = m.mutable_graph();
  graph->set_name(model.name());

  OnnxGraphOptions go;
  go.opset = o.opset;
  go.fold_bn = o.fold_bn;
  go.height = o.height;
  go.width = o.width;
  OnnxGraphBuilder b(*graph, go);
  const models::GraphValue image = b.add_input("image", 3);
  models::GraphValue logits = model.record_main(b, image);  // (batch, classes, H/8, W/8)
  if (o.resize_to_input) logits = b.resize_bilinear_to(logits, image, /*align_corners=*/true, "upsample_to_input");
  b.add_output(logits, "logits");
  if (o.argmax) b.add_output(b.argmax_channels(logits, "argmax"), "labels");

  info.height = o.height;
  info.width_px = o.width;
  info.fold_bn = o.fold_bn;
  info.argmax = o.argmax;
  info.resize_to_input = o.resize_to_input;
  info.opset = o.opset;
  for (const auto& [key, value] : deployment_metadata(info, b.notes(), b.requirements())) {
    onnx::StringStringEntryProto* p = m.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }

  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    fail("onnx export: the ONNX checker refused the graph of ", model.name(), ": ", e.what());
  }
  try {  // strict shape inference on a copy: every node's types and shapes, and our declared output shapes
    onnx::ModelProto inferred = m;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*error_mode=*/1,
                                                                   /*data_prop=*/true));
  } catch (const std::exception& e) {
    fail("onnx export: ONNX shape inference refused the graph of ", model.name(), ": ", e.what());
  }

  OnnxExport e;
  RDD_CHECK(m.SerializeToString(&e.bytes), "onnx export: protobuf could not serialise the model");
  e.notes = b.notes();
  e.requirements = b.requirements();
  for (const onnx::NodeProto& n : graph->node()) ++e.op_counts[n.op_type()];
  e.batchnorms = b.batchnorms();
  e.folded_batchnorms = b.folded_batchnorms();
  for (const onnx::TensorProto& t : graph->initializer())
    if (t.data_type() == onnx::TensorProto::FLOAT && t.name().rfind("const_", 0) != 0) {
      int64_t n = 1;
      for (int64_t d : t.dims()) n *= d;
      e.parameters += n;
    }
  e.input_desc = value_desc(graph->input(0));
  for (const onnx::ValueInfoProto& v : graph->output()) e.output_descs.push_back(value_desc(v));
  return e;
}

}  // namespace rdd::deploy
