#include "train/evaluate.h"

#include <chrono>
#include <cstdio>

#include "data/augment.h"
#include "data/loader.h"
#include "layers/eval_ops.h"
#include "layers/resize.h"
#include "train/progress.h"
#include "train/signals.h"

namespace rdd::train {

namespace {

// Main logits of `x` at x's own size, by one forward or by sliding windows.
Tensor logits_at_input_size(models::SegModel& model, const Tensor& x, const EvalOptions& o) {
  const int H = int(x.size(2)), W = int(x.size(3));
  if (!o.slide) {
    const Tensor main = model.forward(x).main;
    return layers::bilinear_resize_forward(main, H, W, true);
  }
  RDD_CHECK(o.window_h > 0 && o.window_w > 0 && o.stride_h > 0 && o.stride_w > 0, "eval --slide: window ",
            o.window_h, "x", o.window_w, " and stride ", o.stride_h, "x", o.stride_w, " must be positive");
  // Pad (bottom/right, zeros = the mean colour after normalisation) to at least one window.
  const int Hp = std::max(H, o.window_h), Wp = std::max(W, o.window_w);
  const int rows = (Hp - o.window_h + o.stride_h - 1) / o.stride_h + 1;
  const int cols = (Wp - o.window_w + o.stride_w - 1) / o.stride_w + 1;
  const int C = model.options().num_classes;
  Tensor acc = Tensor::zeros({x.size(0), C, Hp, Wp}, DType::f32, x.device());
  Tensor counts = Tensor::zeros({Hp, Wp});
  float* cnt = counts.data<float>();
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      // The last window of a row/column is aligned to the padded edge.
      const int top = std::min(r * o.stride_h, Hp - o.window_h), left = std::min(c * o.stride_w, Wp - o.window_w);
      const Tensor window = layers::crop_window(x, top, left, o.window_h, o.window_w);
      const Tensor main = model.forward(window).main;
      layers::add_window_(acc, layers::bilinear_resize_forward(main, o.window_h, o.window_w, true), top, left);
      for (int i = top; i < top + o.window_h; ++i)
        for (int j = left; j < left + o.window_w; ++j) cnt[int64_t(i) * Wp + j] += 1;
    }
  layers::divide_by_map_(acc, counts.to(x.device()));
  return (Hp == H && Wp == W) ? acc : layers::crop_window(acc, 0, 0, H, W);
}

}  // namespace

Tensor predict_scores(models::SegModel& model, const Tensor& images, int out_h, int out_w, const EvalOptions& o) {
  if (o.single_pass()) return layers::bilinear_resize_forward(model.forward(images).main, out_h, out_w, true);
  RDD_CHECK(!o.scales.empty(), "eval: no --scales given");
  const int H = int(images.size(2)), W = int(images.size(3));
  Tensor sum;  // the argmax of the sum equals the argmax of the mean
  for (double s : o.scales) {
    RDD_CHECK(s > 0 && s <= 4, "eval --scales: ", s, " is outside (0, 4]");
    const int h = std::max(1, int(std::lround(H * s))), w = std::max(1, int(std::lround(W * s)));
    const Tensor scaled = (h == H && w == W) ? images : layers::bilinear_resize_forward(images, h, w, true);
    for (int f = 0; f < (o.flip ? 2 : 1); ++f) {
      const Tensor input = f ? layers::flip_width(scaled) : scaled;
      Tensor logits = logits_at_input_size(model, input, o);
      if (f) logits = layers::flip_width(logits);
      const Tensor probs = layers::softmax_channels(layers::bilinear_resize_forward(logits, out_h, out_w, true));
      if (!sum.defined()) sum = probs;
      else layers::add_window_(sum, probs, 0, 0);
    }
  }
  return sum;
}

EvalResult evaluate(models::SegModel& model, std::shared_ptr<const data::Dataset> dataset, const std::string& preset,
                    Device device, int workers, bool show_progress, dist::Communicator* comm, const EvalOptions& options) {
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
  lc.device = device;
  lc.rank = comm ? comm->rank() : 0;
  lc.world = world;
  data::Loader loader(dataset, data::augment_preset(preset, 8, 8), lc);
  const layers::Mode previous = model.mode();
  model.set_mode(layers::Mode::eval);
  Progress progress(loader.order().per_rank_epoch(), 0, "eval", 50);  // this rank's shard
  data::Batch batch;
  while (loader.next(batch)) {
    if (options.stop_on_request && stop_requested()) {
      result.interrupted = true;
      break;
    }
    const Tensor images = device.is_cpu() ? batch.images : batch.images.to(device);
    const Tensor labels = device.is_cpu() ? batch.labels : batch.labels.to(device);
    // (N, C, H, W) scores at the label size, then argmax into the confusion matrix.
    result.confusion.add_logits(predict_scores(model, images, int(labels.size(1)), int(labels.size(2)), options), labels);
    result.images += images.size(0);
    if (show_progress) progress.update(result.images, {}, 0, images.size(0));
    loader.recycle(std::move(batch));  // waits for the batch's upload
  }
  if (show_progress) progress.finish();
  model.set_mode(previous);
  if (comm && comm->data_parallel()) {
    // Sum the per-rank confusion matrices (and image counts) over ranks, on the model's device.
    std::vector<int64_t>& counts = result.confusion.mutable_counts();
    // Whether any rank was interrupted rides along: then the sum covers part of the split on every rank.
    std::vector<int64_t> packed(counts);
    packed.push_back(result.images);
    packed.push_back(result.interrupted ? 1 : 0);
    Tensor t = Tensor::from_vector(packed, {int64_t(packed.size())}).to(device);
    comm->all_reduce_sum(t);
    const std::vector<int64_t> summed = t.to_vector<int64_t>();
    comm->throw_if_failed();  // an abort by the NCCL watchdog would leave garbage in t
    std::copy(summed.begin(), summed.end() - 2, counts.begin());
    result.images = summed[summed.size() - 2];
    result.interrupted = summed.back() > 0;
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

}  // namespace rdd::train
