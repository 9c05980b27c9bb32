// rdd's losses: pixel cross-entropy, OHEM thresholds, logit KD, channel-wise distillation (CWD), and the
// two RDD task losses (TFE, TSE). Each returns its value AND the gradient with respect to the student
// logits it was given (no gradient ever flows into the teacher), on the CPU (f32, or f64 for gradient
// checks) and the GPU (f32). bf16/f16 logits are read through a conversion to f32; gradients are f32.
//
// Semantics follow the released RDD code (github.com/sunyueue/RDD, see shared/rdd-method.md §1) unless an
// option says otherwise:
// - Logits arrive at output stride 8, (N, C, h, w); labels at full size, (N, H, W) i32, −1 = ignore. The
//   CE losses upsample the logits bilinearly (align_corners = true) to (H, W) inside the loss; the
//   gradient flows back through that resize. Any H, W (not only multiples of h, w).
// - Logit KD: KL(p_T ‖ p_S) at temperature T per stride-8 pixel, summed over classes, averaged over the
//   N·h·w pixels, × T² (kl_div(log_softmax(s/T), softmax(t/T), 'batchmean')·T²). No ignore mask.
// - CWD (Shu et al., "Channel-wise Knowledge Distillation for Dense Prediction", as in CIRKD's
//   CriterionCWD with norm 'channel', divergence 'kl'): for every (n, c), softmax over the h·w positions
//   at temperature τ of teacher and student; loss = τ²/(N·C) · Σ_{n,c} KL(p_T ‖ p_S).
// - OHEM threshold (get_mask): GT-probabilities of all N·H·W positions, ignored ones counted as 1;
//   threshold = max(thresh, k-th smallest GT-prob) with k = min(N·H·W, min_kept) (min_kept 0: thresh).
//   hard = valid ∧ GT-prob ≤ threshold (ties at the threshold are kept). The released code crashes when
//   min_kept > number of valid pixels; rdd applies the same rule there, so the k-th smallest is then an
//   ignored pixel's 1 and every valid pixel is hard (the same outcome as CIRKD's OHEM, which then keeps
//   every valid pixel).
// - TFE: weight map RD = exp(−KL(p_T^aux ‖ p_T^main)) per stride-8 pixel (the released code's direction;
//   TfeDirection::main_to_aux is the paper's KL(main ‖ aux)), upsampled bilinearly (align_corners = true)
//   to (H, W); task = Σ_p RD_p·(CE_main,p + aux_weight·CE_aux,p) / (N·H·W), ignored pixels in the
//   denominator (their CE is 0); unweighted CE.
// - TSE: per head pair (student main vs teacher main, student aux vs teacher aux) the OHEM hard masks of
//   the student and the teacher, each on its own upsampled logits, combined by XOR (default), OR, AND, or
//   plain OHEM (student only); CE = Σ_{p∈sel} w_{y_p}·CE_p / Σ_{p∈sel} w_{y_p} with the caller's class
//   weights (none: all 1). task = pair(main) + aux_weight·pair(aux). An empty selection gives 0 and a
//   zero gradient (the released code gives NaN).
// - Baseline (stage none): CE averaged over valid pixels, main + aux_weight·aux; all ignored → 0.
//
// GPU: every loss returns its value on the host, so each call waits for the compute stream a few times
// (the valid-pixel count, the sums, and one histogram per radix-select pass: 4 per OHEM threshold).
// Teacher and student logits have the same shape, except in TSE where each is upsampled on its own
// (only N and C must agree there).
#pragma once

#include <cstdint>
#include <string>

#include "engine/tensor.h"
#include "rdd/pixel_ops.h"

namespace rdd::method {

inline constexpr int kIgnoreLabel = -1;
// The aux head's weight in the task loss (task = main + aux_weight·aux), the reference's 0.4.
inline constexpr double kAuxWeight = 0.4;

// The 19 Cityscapes class weights of the released OhemCrossEntropy2d (trainId order), for the Cityscapes
// dataset to pass as TseOptions::class_weights. Other datasets pass none (or their own).
inline constexpr float kCityscapesClassWeights[19] = {0.8373f, 0.9180f, 0.8660f, 1.0345f, 1.0166f, 0.9969f, 0.9754f,
                                                      1.0489f, 0.8786f, 1.0023f, 0.9539f, 0.9843f, 1.1116f, 0.9037f,
                                                      1.0865f, 1.0955f, 1.0865f, 1.1529f, 1.0507f};
Tensor cityscapes_class_weights();  // (19) f32 on the CPU

struct LossGrad {
  double loss = 0;
  Tensor grad;  // d loss / d logits: the logits' shape, f32 (f64 for f64 logits), their device
};

enum class CEReduction {
  mean_valid,     // Σ_p c_p·CE_p / (number of valid pixels)           (PyTorch 'mean' without weights)
  weighted_mean,  // Σ_p c_p·CE_p / Σ_p c_p                             (PyTorch 'mean' with class weights)
  mean_all,       // Σ_p c_p·CE_p / (N·H·W), ignored pixels counted      (the TFE reduction)
};  // c_p = class_weights[y_p]·pixel_weights_p; a zero denominator gives loss 0 and a zero gradient

struct CrossEntropyOptions {
  int ignore_index = kIgnoreLabel;
  Tensor class_weights;  // (C), optional
  Tensor pixel_weights;  // (N, H, W) at the label size, optional, no gradient
  CEReduction reduction = CEReduction::mean_valid;
};

// logits: (N, C, h, w); labels: (N, H, W) i32. Upsamples to (H, W) (align_corners = true) when sizes differ.
LossGrad pixel_cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& options = {});

struct OhemOptions {
  double thresh = 0.7;        // t: hard = GT-probability ≤ max(t, k-th smallest)  (rdd distill --tse-thresh)
  int64_t min_kept = 100000;  // k (--min-kept)
  int ignore_index = kIgnoreLabel;
};
// The OHEM threshold of a GT-probability map (N, H, W) (ignored positions hold 1, as pixel_ce_stats gives).
double ohem_threshold(const Tensor& gt_prob, const OhemOptions& options);
// The hard mask (N, H, W) 0/1 of one network's logits (N, C, h, w) against labels (N, H, W).
Tensor ohem_hard_mask(const Tensor& logits, const Tensor& labels, const OhemOptions& options);

// Logit KD, KL(teacher ‖ student) at temperature T (see above). student, teacher: (N, C, h, w).
LossGrad logit_kd(const Tensor& student, const Tensor& teacher, double temperature);
// Channel-wise distillation at temperature τ (see above). student, teacher: (N, C, h, w).
LossGrad channel_wise_kd(const Tensor& student, const Tensor& teacher, double temperature);

enum class TfeDirection { aux_main /* released: KL(aux ‖ main) */, main_aux /* paper Eq. 6: KL(main ‖ aux) */ };
// exp(−KL) of the teacher's heads per stride-8 pixel, upsampled to (out_h, out_w): (N, H, W).
Tensor tfe_weight_map(const Tensor& teacher_main, const Tensor& teacher_aux, int out_h, int out_w,
                      TfeDirection direction = TfeDirection::aux_main);

// The student's task loss of one step: the total, its main and aux parts (total = main + aux_weight·aux),
// and the gradients w.r.t. the student's main and aux logits (aux undefined without an aux head). Every
// task loss takes the aux head's weight as its own argument.
struct TaskLoss {
  double total = 0, main = 0, aux = 0;
  Tensor grad_main, grad_aux;
};

struct TfeOptions {
  TfeDirection direction = TfeDirection::aux_main;
  int ignore_index = kIgnoreLabel;
};
// s_aux may be undefined (no student aux head); the teacher's aux head is required.
TaskLoss tfe_task_loss(const Tensor& s_main, const Tensor& s_aux, const Tensor& t_main, const Tensor& t_aux,
                       const Tensor& labels, const TfeOptions& options = {}, double aux_weight = kAuxWeight);

// TSE's hard masks are OHEM's (thresh, min_kept, ignore_index), combined by `mode`.
struct TseOptions : OhemOptions {
  TseMode mode = TseMode::xor_mode;
  Tensor class_weights;  // (C) or undefined (unweighted)
};
// One head pair: the selected-pixel class-weighted CE of `student` and its gradient.
LossGrad tse_pair_loss(const Tensor& student, const Tensor& teacher, const Tensor& labels, const TseOptions& options);
// Main pair + aux_weight·aux pair; s_aux undefined → main only (t_aux then unused). t_aux is required
// when s_aux is given (the aux pair compares the student's aux head with the teacher's).
TaskLoss tse_task_loss(const Tensor& s_main, const Tensor& s_aux, const Tensor& t_main, const Tensor& t_aux,
                       const Tensor& labels, const TseOptions& options = {}, double aux_weight = kAuxWeight);

// The baseline: CE averaged over valid pixels, main + aux_weight·aux, unweighted.
TaskLoss baseline_task_loss(const Tensor& s_main, const Tensor& s_aux, const Tensor& labels,
                            double aux_weight = kAuxWeight, int ignore_index = kIgnoreLabel);

}  // namespace rdd::method
