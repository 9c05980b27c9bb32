#include "apps/bench_folded.h"

#include <chrono>

#include "deploy/graph_executor.h"

namespace rdd::apps {

double time_graph_forward(const models::SegModel& model, const Tensor& images, bool fold_bn, int warmup,
                          int iterations) {
  const deploy::GraphExecutor graph(model, fold_bn);
  const Device device = images.device();
  for (int i = 0; i < warmup; ++i) graph.run(images);
  double ms = 0;
  for (int i = 0; i < iterations; ++i) {
    synchronize(device);
    const auto t0 = std::chrono::steady_clock::now();
    graph.run(images);
    synchronize(device);
    ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  return ms / iterations;
}

}  // namespace rdd::apps
