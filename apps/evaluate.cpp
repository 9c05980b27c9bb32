#include "apps/evaluate.h"

#include <chrono>
#include <cstdio>

#include "data/augment.h"
#include "data/loader.h"
#include "layers/resize.h"

namespace rdd::apps {

EvalResult evaluate(models::SegModel& model, std::shared_ptr<const data::Dataset> dataset, const std::string& preset,
                    Device device, int workers, bool show_progress, Communicator* comm) {
  const int world = comm ? comm->world_size() : 1;
  const int C = model.options().num_classes;
  RDD_CHECK(dataset->num_classes == C, "evaluate: the model predicts ", C, " classes, the dataset has ",
            dataset->num_classes);
  EvalResult result(C);
  const auto t0 = std::chrono::steady_clock::now();
  data::LoaderConfig lc;
  lc.batch_size = 1;
  lc.workers = std::max(1, workers);
  lc.train = false;
  lc.pinned = device.is_cuda();
  lc.rank = comm ? comm->rank() : 0;
  lc.world = world;
  data::Loader loader(dataset, data::augment_preset(preset, 8, 8), lc);
  const layers::Mode previous = model.mode();
  model.set_mode(layers::Mode::eval);
  Progress progress(int64_t(dataset->size()), 0, "eval", 50);
  data::Batch batch;
  while (loader.next(batch)) {
    const Tensor images = device.is_cpu() ? batch.images : batch.images.to(device);
    const Tensor labels = device.is_cpu() ? batch.labels : batch.labels.to(device);
    const models::ModelOutputs out = model.forward(images);
    // (N, C, h, w) → (N, C, H, W), then argmax into the confusion matrix.
    const Tensor up = layers::bilinear_resize_forward(out.main, int(labels.size(1)), int(labels.size(2)), true);
    result.confusion.add_logits(up, labels);
    result.images += images.size(0);
    if (show_progress) progress.update(result.images, {}, 0, images.size(0));
    loader.recycle(std::move(batch));
  }
  if (show_progress) progress.finish();
  model.set_mode(previous);
  if (world > 1) {
    // Sum the per-rank confusion matrices (and image counts) over ranks, on the model's device.
    std::vector<int64_t>& counts = result.confusion.mutable_counts();
    std::vector<int64_t> packed(counts);
    packed.push_back(result.images);
    Tensor t = Tensor::from_vector(packed, {int64_t(packed.size())}).to(device);
    comm->all_reduce_sum(t);
    const std::vector<int64_t> summed = t.to_vector<int64_t>();
    std::copy(summed.begin(), summed.end() - 1, counts.begin());
    result.images = summed.back();
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

std::string format_eval_table(const EvalResult& r, const std::vector<std::string>& names) {
  std::string s;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%4s  %-16s %7s\n", "id", "class", "IoU %");
  s += buf;
  const std::vector<double> iou = r.confusion.iou();
  for (size_t c = 0; c < iou.size(); ++c) {
    std::snprintf(buf, sizeof buf, "%4zu  %-16s %7.2f\n", c, c < names.size() ? names[c].c_str() : "?", 100 * iou[c]);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "mIoU %.2f%%  pixel accuracy %.2f%%  (%lld images, %d/%d classes present, %.1f s)\n",
                100 * r.confusion.mean_iou(), 100 * r.confusion.pixel_accuracy(), (long long)r.images,
                r.confusion.classes_present(), r.confusion.num_classes(), r.seconds);
  s += buf;
  return s;
}

nlohmann::json eval_json(const EvalResult& r, const std::vector<std::string>& names) {
  nlohmann::json classes = nlohmann::json::array();
  const std::vector<double> iou = r.confusion.iou();
  for (size_t c = 0; c < iou.size(); ++c)
    classes.push_back({{"id", c}, {"name", c < names.size() ? names[c] : "?"}, {"iou", iou[c]}});
  return {{"miou", r.confusion.mean_iou()},
          {"pixel_accuracy", r.confusion.pixel_accuracy()},
          {"classes_present", r.confusion.classes_present()},
          {"images", r.images},
          {"seconds", r.seconds},
          {"classes", classes}};
}

}  // namespace rdd::apps
