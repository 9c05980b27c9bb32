// The adversarial distillation term the CIRKD / RDD release runs with SKD and IFVD (train_other_kd*.py,
// losses/adv.py, utils/sagan.py; shared/rdd-method.md §1.6), re-derived:
//
// A SAGAN-style discriminator on the (label-less) main logits, N×K×h×w → N×1×h'×w':
//   preprocess BatchNorm2d(K) (train mode; SyncBN with several ranks)
//   l1..l4: spectrally normalised Conv2d(4, stride 2, padding 1, bias) K → d → 2d → 4d → 8d, LeakyReLU(0.1)
//           (d = conv_dim, 64 in the release), self-attention after l3 (4d) and after l4 (8d)
//   last:   Conv2d(8d → 1, 4, bias), no padding
// Spectral norm (the release's SpectralNorm, one power iteration per forward): v = l2n(W̄ᵀu), u = l2n(W̄v),
// σ = u·(W̄v), W = W̄/σ, l2n(x) = x/(‖x‖ + 1e-12); u, v are stored back (buffers), W̄ is trained. Self-
// attention: q, k = 1×1 convs C → C/8, v = 1×1 conv C → C (biases), A = softmax_rows(qᵀk) (h'w' × h'w'),
// y = γ·(v·Aᵀ) + x with γ a trained scalar starting at 0.
//
// Hinge losses, as the release computes them each step: three discriminator forwards in this order —
//   G:  adv_g = −mean D(s)                        (its gradient reaches the student's main logits)
//   D:  adv_d = mean relu(1 − D(t)) + mean relu(1 + D(s))   (s detached)
// every forward updating u, v and the BN running statistics. Both backwards run after the three forwards,
// and the discriminator's gradient is λ_adv·∂adv_g/∂θ + λ_d·∂adv_d/∂θ: the release's losses.backward()
// reaches the discriminator's parameters too, before D_losses.backward() adds to them. The spectral norm's
// σ term in those backwards uses u, v as they are after the third forward (the release's autograd saves u
// and v, whose .data the later forwards replace). Then Adam (lr 4e-4, β 0.9 / 0.99, its own optimizer,
// constant learning rate) updates the discriminator; its state is in the checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/adam.h"
#include "engine/params.h"
#include "engine/tensor.h"
#include "layers/batchnorm2d.h"
#include "rdd/distill.h"

namespace rdd::method {

struct SnConvWeights {
  Tensor w_bar, bias;  // (O, I, 4, 4), (O): trained
  Tensor u, v;         // (O), (I·16): the power iteration's vectors
};
struct SelfAttnWeights {
  Tensor wq, bq, wk, bk, wv, bv;  // (C/8, C, 1, 1), (C/8), (C/8, C, 1, 1), (C/8), (C, C, 1, 1), (C)
  Tensor gamma;                   // (1)
};
// The discriminator's tensors (any float dtype, one device; f64 on the CPU for finite differences). The
// gradient struct has the same layout (u, v, bn_mean, bn_var unused there).
struct DiscriminatorWeights {
  Tensor bn_weight, bn_bias, bn_mean, bn_var;  // (K)
  SnConvWeights l[4];
  SelfAttnWeights attn1, attn2;                // after l3 and after l4
  Tensor last_w, last_b;                       // (1, 8d, 4, 4), (1)
  int64_t num_batches_tracked = 0;             // BN forwards so far
};
// Zeros shaped like w's trained tensors (u, v, statistics left undefined).
DiscriminatorWeights discriminator_zero_grads(const DiscriminatorWeights& w);

// What a forward keeps for its backward.
struct DiscriminatorTape {
  Tensor x, x_bn;
  layers::BatchNormSaved bn;
  Tensor conv_in[4], conv_w[4], pre_act[4];
  double sigma[4] = {0, 0, 0, 0};
  struct Attn {
    Tensor x, q, k, v, a, o;  // x (B, C, N), q/k (B, C/8, N), v (B, C, N), a (B, N, N), o = v·aᵀ (B, C, N)
    double gamma = 0;
    int64_t h = 0, w = 0;
  } attn1, attn2;
  Tensor last_in;
};

// x (N, K, h, w) → (N, 1, h', w'). Train mode: BN batch statistics (running statistics and
// num_batches_tracked updated; `reducer` for SyncBN); with update_uv the power iteration stores u, v.
Tensor discriminator_forward(DiscriminatorWeights& w, const Tensor& x, bool update_uv, DiscriminatorTape* tape,
                             const layers::StatsReducer& reducer = {});
// Accumulates into g the gradients of ⟨dout, D(x)⟩ (σ terms with w's current u, v, see above); returns
// dx when need_dx.
Tensor discriminator_backward(const DiscriminatorWeights& w, const DiscriminatorTape& tape, const Tensor& dout,
                              DiscriminatorWeights& g, bool need_dx, const layers::StatsReducer& reducer = {});

struct AdversarialLoss {
  double g = 0, d = 0;  // adv_g, adv_d (unweighted)
  Tensor grad_student;  // λ_adv · ∂adv_g/∂s
};
// One step's losses (three forwards, two backwards as above); accumulates λ_adv·∂adv_g/∂θ + λ_d·∂adv_d/∂θ
// into grads. s, t: the main logits (N, K, h, w) of student and teacher.
AdversarialLoss adversarial_losses(DiscriminatorWeights& w, DiscriminatorWeights& grads, const Tensor& s,
                                   const Tensor& t, double g_weight, double d_weight,
                                   const layers::StatsReducer& reducer = {});

// The distillation term: logs "adv_g" (weight λ_adv, the student's) and "adv_d" (the discriminator's,
// logging only: weight 0). The discriminator lives in the term's own store under the release's state_dict
// names (preprocess_additional.*, l1.0.module.weight_bar / bias / weight_u / weight_v, ..., attn1.gamma,
// attn1.query_conv.weight, ..., last.0.weight, last.0.bias) with its own Adam; checkpointed through
// save_state as "adv.<name>", "adv.adam_m", "adv.adam_v", "adv.adam_step".
class AdversarialTerm : public DistillTerm {
 public:
  AdversarialTerm(double g_weight, double d_weight, int num_classes, int conv_dim = 64, AdamOptions adam = {4e-4, 0.9, 0.99, 1e-8});
  std::string name() const override { return "adv"; }
  std::vector<std::string> slots() const override { return {"main"}; }
  void init(Device device, uint64_t seed) override;
  void set_ranks(const RankContext& ranks) override { ranks_ = ranks; }
  void compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels, LossTerms& terms,
               StudentGrads& grads) override;
  void update(const StepInfo& step) override;
  void save_state(std::map<std::string, Tensor>& out) const override;
  void load_state(const std::map<std::string, Tensor>& in) override;
  double step_flops(const OutputShapes& s) const override;
  ParamStore& params() { return store_; }
  const Adam* adam() const { return adam_.get(); }

 private:
  DiscriminatorWeights weights();  // views of the store
  void store_back(const DiscriminatorWeights& w);

  double g_weight_, d_weight_;
  int num_classes_, conv_dim_;
  AdamOptions adam_options_;
  ParamStore store_;
  std::unique_ptr<Adam> adam_;
  RankContext ranks_;
  bool have_grads_ = false;
};

}  // namespace rdd::method
