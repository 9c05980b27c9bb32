// The comparison KD methods of the RDD paper's tables (and two canonical ones), as functions: each takes
// the student's and the teacher's outputs (and the method's own parameters), returns its unweighted loss
// value(s) and the gradients w.r.t. the student's outputs and those parameters. Nothing flows into the
// teacher. rdd/kd_terms.h wraps them as DistillTerms (weights, parameters, state).
//
// Semantics follow the CIRKD / RDD release's losses/ (github.com/winycg/CIRKD, shared/rdd-method.md §1.6)
// and DIST's segmentation loss (github.com/hunto/DIST_KD), re-derived, not transcribed:
// - AT (CriterionAT): a = F.normalize(mean_c f², over the h·w positions of each image);
//   loss = mean over N·h·w of (a_S − a_T)². The scripts use it on the head feature, weight 10000.
// - FitNet (CriterionFitNet): y = conv1×1(f_S; W) (C_S → C_T, no bias); loss = mean((y − f_T)²).
// - CWD, feature variant (CriterionCWD, norm 'channel', divergence 'kl', the same module as the logit
//   variant): y = conv1×1(f_S; W) when C_S ≠ C_T (else f_S); per (n, c) softmax over h·w at τ of y and f_T;
//   loss = τ²·Σ_{n,c} KL(p_T ‖ p_S) / (N·C_S). C_S, the student's channel count, as the released module
//   reads n, c from its input before the adapter.
// - SKD (CriterionStructuralKD): 2×2 max-pool (ceil mode) of both features, F.normalize over channels,
//   S = Fᵀ·F (h'w' × h'w') per image; loss = mean over N·(h'w')² of (S_S − S_T)².
// - IFVD (CriterionIFV): labels nearest-resized to h×w; per image and class k the centre
//   c_k = Σ_{p∈k} f_p / (|k| + 1e-6); cos_p = cosine(f_p, c_{y_p}) (eps 1e-8), 1 at ignored pixels (their
//   "centre" is the feature itself); loss = mean over N·h·w of (cos_S − cos_T)².
// - DSD (CriterionDoubleSimKD): PSD over the list [aux logits, head feature, main logits]: a_k =
//   F.normalize(mean_c x_k²) per image; for each pair m > n: r = F.normalize(F.normalize(a_m − a_n));
//   psd = Σ_pairs mean((r_S − r_T)²) / 3. CSD on the main logits: 2×2 average pool (ceil mode), softmax
//   over positions at τ (4) per (n, c), S = P·Pᵀ (C × C); csd = mean over N·C² of (S_S − S_T)².
// - DIST (Huang et al. 2022, segmentation release): p = softmax(z/τ) over classes at each pixel;
//   inter = 1 − mean over pixels of pearson(p_S[pixel], p_T[pixel]); intra = 1 − mean over classes of
//   pearson(p_S[:, class], p_T[:, class]) over all N·h·w pixels; pearson(u, v) = ⟨u−ū, v−v̄⟩ /
//   (‖u−ū‖·‖v−v̄‖ + 1e-8); loss = τ²·(β·inter + γ·intra).
// Shapes: logits (N, K, h, w); features (N, C, h, w) (student and teacher channels may differ unless
// stated); labels (N, H, W) i32, −1 = ignore. CPU f32/f64 (f64 for finite differences), GPU f32; the
// teacher's tensors are read in the student's dtype.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace rdd::method {

struct FeatureLoss {
  double loss = 0;
  Tensor grad;    // d loss / d student input (its shape)
  Tensor grad_w;  // d loss / d adapter weight (when the method has one)
};

FeatureLoss attention_transfer(const Tensor& f_s, const Tensor& f_t);
// w: (C_T, C_S, 1, 1).
FeatureLoss fitnet(const Tensor& f_s, const Tensor& f_t, const Tensor& w);
// w: (C_T, C_S, 1, 1), or undefined when C_S == C_T (no adapter, as the released module).
FeatureLoss cwd_feature(const Tensor& f_s, const Tensor& f_t, const Tensor& w, double temperature);
FeatureLoss structural_kd(const Tensor& f_s, const Tensor& f_t);
FeatureLoss ifvd(const Tensor& f_s, const Tensor& f_t, const Tensor& labels, int64_t num_classes);

struct DsdLoss {
  double psd = 0, csd = 0;
  Tensor grad_aux, grad_feature, grad_main;  // d psd / d aux, d psd / d feature, d (psd + csd) / d main
  Tensor grad_main_csd;                      // d csd / d main alone (grad_main includes it)
};
// psd_weight / csd_weight scale each part's gradients (the terms' λs; 1 for the plain sum).
DsdLoss double_similarity_kd(const Tensor& s_aux, const Tensor& s_feature, const Tensor& s_main, const Tensor& t_aux,
                             const Tensor& t_feature, const Tensor& t_main, double csd_temperature,
                             double psd_weight = 1, double csd_weight = 1);

struct DistLoss {
  double loss = 0, inter = 0, intra = 0;  // loss = τ²(β·inter + γ·intra)
  Tensor grad;
};
DistLoss dist_kd(const Tensor& s, const Tensor& t, double beta, double gamma, double temperature);

}  // namespace rdd::method
