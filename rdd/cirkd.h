// CIRKD (Yang et al., "Cross-Image Relational Knowledge Distillation for Semantic Segmentation", CVPR
// 2022) as the CIRKD / RDD release runs it (losses/cirkd_mini_batch.py, losses/cirkd_memory.py,
// train_cirkd_two_stage_diff.py; shared/rdd-method.md §1.6), re-derived:
//
// - Mini-batch pixel-to-pixel (CriterionMiniBatchCrossImagePair, τ = contrast_temperature): the head
//   features of student and teacher, F.normalize over channels, for every ordered pair (i, j) of images of
//   the rank's batch S = F_iᵀ·F_j (h·w × h·w); loss = Σ_{i,j} KL(softmax(S_T/τ) ‖ softmax(S_S/τ)) row-wise,
//   'batchmean' (÷ h·w), ÷ B². No projection, no labels.
// - Memory pixel-to-pixel and pixel-to-region (StudentSegContrast): the student feature through the
//   projection head (1×1 conv C_S→C_T, SyncBN, ReLU, 1×1 conv), F.normalize; the teacher feature
//   F.normalize; labels nearest-resized to h×w; the anchors are the rank's non-ignored pixels. First the
//   memory is updated with the current batch of every rank (all-gathered, rank order): per image and per
//   class present (ascending) the class's mean teacher feature, normalised, goes to the region queue at
//   its pointer (pointer + 1 mod size); up to 16 teacher pixel features go to the pixel queue (see
//   PixelQueueFill; at pointer p: rows p..p+K−1 and p += K, or, when p + K ≥ size, the last K rows and
//   p = 0). Then contrast_size rows (the same random rows for every class; all when it is ≥ the memory
//   size) of each class's queue are the keys; logits = anchors·keysᵀ/τ for student and teacher; loss =
//   KL(softmax(t/T) ‖ softmax(s/T))·T² 'batchmean' (÷ anchors), T = contrast_kd_temperature. No anchors
//   (every pixel ignored): 0 and no gradient (after the update). Queue rows of one step are written in
//   ascending source position.
//
// On the GPU the products and row operations are device work (cuBLAS GEMMs, kd_ops kernels); the list of
// anchors and the queue update's plan (which rows go where) are made on the host from the labels at the
// feature size (N·h·w integers per step), and the pointers live on the host between uses: a few small
// copies and synchronisations per step.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/params.h"
#include "engine/tensor.h"
#include "layers/batchnorm2d.h"
#include "layers/conv2d.h"
#include "layers/activation.h"
#include "rdd/distill.h"

namespace rdd::method {

// Which teacher pixels fill class c's pixel queue each step.
enum class PixelQueueFill {
  released,  // the release: this_feat[:, perm[:K]] — K random positions among the first n_c of the IMAGE
             // (n_c = class c's pixel count), whatever their class, ignored pixels included; what produced
             // the paper's numbers
  klass,     // the evident intent: K random pixels of class c
};
const char* pixel_queue_fill_name(PixelQueueFill f);  // "released", "class"

// Mini-batch term: value and d/d f_s. f_s (N, C_S, h, w), f_t (N, C_T, h, w).
struct CirkdMiniBatch {
  double loss = 0;
  Tensor grad;
};
CirkdMiniBatch cirkd_minibatch(const Tensor& f_s, const Tensor& f_t, double temperature);

// Memory terms for given anchors and keys: s_proj (N, D, h, w) the projected student feature before its
// normalisation, t_feat (N, D, h, w) the teacher feature (not normalised), labels_small (N, h·w) i32,
// pixel_keys (Kp, D), region_keys (Kr, D) (rows already normalised, as the queues hold them). Returns both
// values and d(pixel_weight·pixel + region_weight·region)/d s_proj (zero when no pixel is labelled).
struct CirkdMemory {
  double pixel = 0, region = 0;
  int64_t anchors = 0;
  Tensor grad;
};
CirkdMemory cirkd_memory_contrast(const Tensor& s_proj, const Tensor& t_feat, const Tensor& labels_small,
                                  const Tensor& pixel_keys, const Tensor& region_keys, double contrast_temperature,
                                  double kd_temperature, int ignore_index, double pixel_weight = 1,
                                  double region_weight = 1);

struct CirkdOptions {
  int num_classes = 19;
  int64_t pixel_memory_size = 20000, region_memory_size = 2000;  // per class (the scripts' defaults)
  int64_t pixel_contrast_size = 4096 / 19 + 1, region_contrast_size = 1024 / 19 + 1;  // per class
  double contrast_temperature = 0.1, contrast_kd_temperature = 1.0;
  int ignore_index = -1;
  int64_t pixel_update_freq = 16;  // K: pixels per class and image enqueued per step
  PixelQueueFill fill = PixelQueueFill::released;
};

// The queue update of one step (exposed for tests): t_feat_all (B, D, h, w) the teacher features of every
// rank's batch (rank order), labels_all (B, h·w) i32; queues (K, R, D) and pointers (K) i64 updated in
// place. rng_seed/rng_offset: the Philox stream of the random positions.
void cirkd_enqueue(const Tensor& t_feat_all, const Tensor& labels_all, Tensor& pixel_queue, Tensor& pixel_ptr,
                   Tensor& region_queue, Tensor& region_ptr, const CirkdOptions& o, uint64_t rng_seed,
                   uint64_t rng_offset);

// The distillation term: logs "cirkd_minibatch", "cirkd_pixel", "cirkd_region" at weights
// weight·minibatch_weight, weight·pixel_weight, weight·region_weight (the scripts: 1, 0.1, 0.1). Its
// parameters and buffers in the distiller's store: cirkd.project_head.{0.weight, 1.*, 3.weight},
// cirkd.teacher_pixel_queue (K, pixel_memory, C_T), cirkd.pixel_queue_ptr (K) i64,
// cirkd.teacher_segment_queue (K, region_memory, C_T), cirkd.segment_queue_ptr (K) i64.
class CirkdTerm : public DistillTerm {
 public:
  CirkdTerm(ParamStore& store, double minibatch_weight, double pixel_weight, double region_weight, CirkdOptions o,
            int student_channels, int teacher_channels);
  std::string name() const override { return "cirkd"; }
  std::vector<std::string> slots() const override { return {"feature"}; }
  void init(Device device, uint64_t seed) override;
  void set_ranks(const RankContext& ranks) override;
  void compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels, LossTerms& terms,
               StudentGrads& grads) override;
  const CirkdOptions& options() const { return opt_; }
  double step_flops(const OutputShapes& s) const override;

 private:
  double minibatch_weight_, pixel_weight_, region_weight_;
  CirkdOptions opt_;
  int teacher_channels_;
  layers::Conv2d conv0_;
  layers::BatchNorm2d bn_;
  layers::ReLU relu_;
  layers::Conv2d conv3_;
  Param *pixel_queue_, *pixel_ptr_, *region_queue_, *region_ptr_;
  RankContext ranks_;
};

}  // namespace rdd::method
