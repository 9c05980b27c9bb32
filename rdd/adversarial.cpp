// The adversarial term's discriminator, hinge losses and Adam (see adversarial.h).
#include "rdd/adversarial.h"

#include <cmath>

#include "engine/op_profile.h"
#include "engine/rng.h"
#include "layers/conv2d.h"
#include "layers/matmul.h"
#include "rdd/kd_ops.h"
#include "rdd/pixel_ops.h"

namespace rdd::method {

namespace {

constexpr double kSlope = 0.1;           // LeakyReLU(0.1)
constexpr double kPowerEps = 1e-12;      // the release's l2normalize: x / (‖x‖ + eps)
constexpr double kBnEps = 1e-5, kBnMomentum = 0.1;
constexpr uint64_t kInitOffset = 0x4144560000000000ull;  // "ADV"

Tensor scaled(const Tensor& x, double a) {
  Tensor y = Tensor::zeros(x.shape(), x.dtype(), x.device());
  axpy(y, x, a);
  return y;
}

void add_into(Tensor& dst, const Tensor& src, double a = 1.0) {
  if (!dst.defined()) dst = Tensor::zeros(src.shape(), src.dtype(), src.device());
  axpy(dst, src, a);
}

// "l<i+1>.0.module." (built by appends: GCC 12's -Wrestrict misfires on the operator+ chain).
std::string sn_prefix(int i) {
  std::string p = "l";
  p += char('1' + i);
  p += ".0.module.";
  return p;
}

Tensor zeros_like(const Tensor& t) { return t.defined() ? Tensor::zeros(t.shape(), t.dtype(), t.device()) : Tensor(); }

// x / (‖x‖ + eps).
Tensor l2n(const Tensor& x) { return scaled(x, 1.0 / (std::sqrt(dot_all(x, x)) + kPowerEps)); }

// y (m) = A (m × k) · x (k), or Aᵀ·x with trans.
Tensor matvec(const Tensor& a, int64_t rows, int64_t cols, const Tensor& x, bool trans) {
  Tensor y = Tensor::empty({trans ? cols : rows}, a.dtype(), a.device());
  layers::batched_gemm(a, x, y, {.batch = 1, .m = trans ? cols : rows, .n = 1, .k = trans ? rows : cols, .trans_a = trans});
  return y;
}

const layers::Conv2dOptions kDown{.stride = 2, .padding = 1};

// Spectral norm: the weight used by the convolution (and σ); the power iteration writes u, v when asked.
Tensor sn_weight(SnConvWeights& l, bool update_uv, double& sigma) {
  const int64_t o = l.w_bar.size(0), j = l.w_bar.numel() / o;
  const Tensor wm = l.w_bar.view({o, j});
  Tensor u = l.u, v = l.v;
  Tensor wv;
  if (update_uv) {
    v = l2n(matvec(wm, o, j, u, true));
    wv = matvec(wm, o, j, v, false);
    u = l2n(wv);
    l.u.copy_from(u);
    l.v.copy_from(v);
  } else {
    wv = matvec(wm, o, j, v, false);
  }
  sigma = dot_all(u, wv);
  RDD_CHECK(std::isfinite(sigma) && sigma != 0, "discriminator: spectral norm σ = ", sigma);
  return scaled(l.w_bar, 1.0 / sigma);
}

// dW̄ = dW/σ − (⟨dW, W̄⟩/σ²)·u·vᵀ, accumulated into g.
void sn_backward(const SnConvWeights& l, double sigma, const Tensor& dw, Tensor& g_wbar) {
  const int64_t o = l.w_bar.size(0), j = l.w_bar.numel() / o;
  add_into(g_wbar, dw, 1.0 / sigma);
  const double c = dot_all(dw, l.w_bar) / (sigma * sigma);
  Tensor gv = g_wbar.view({o, j});
  layers::batched_gemm(l.u, l.v, gv, {.batch = 1, .m = o, .n = j, .k = 1}, -c, 1.0);
}

Tensor conv1x1(const Tensor& x, const Tensor& w, const Tensor& b) { return layers::conv2d_forward(x, w, b, {}); }

Tensor attn_forward(const SelfAttnWeights& a, const Tensor& x, DiscriminatorTape::Attn* t) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), n = h * w, c8 = a.wq.size(0);
  const Tensor q = conv1x1(x, a.wq, a.bq).view({b, c8, n}), k = conv1x1(x, a.wk, a.bk).view({b, c8, n});
  const Tensor v = conv1x1(x, a.wv, a.bv).view({b, c, n});
  Tensor e = Tensor::empty({b, n, n}, x.dtype(), x.device());
  layers::batched_gemm(q, k, e, {.batch = b, .m = n, .n = n, .k = c8, .trans_a = true, .stride_a = c8 * n,
                                 .stride_b = c8 * n, .stride_c = n * n});
  const Tensor att = softmax_rows(e, {b * n, n, 1}, 1.0);
  Tensor o = Tensor::empty({b, c, n}, x.dtype(), x.device());
  layers::batched_gemm(v, att, o, {.batch = b, .m = c, .n = n, .k = n, .trans_b = true, .stride_a = c * n,
                                   .stride_b = n * n, .stride_c = c * n});
  const double gamma = a.gamma.to_vector<double>()[0];
  Tensor y = x.clone();
  axpy(y, o.view(x.shape()), gamma);
  if (t) *t = {x, q, k, v, att, o, gamma, h, w};
  return y;
}

Tensor attn_backward(const SelfAttnWeights& a, const DiscriminatorTape::Attn& t, const Tensor& dy, SelfAttnWeights& g) {
  const int64_t b = t.x.size(0), c = t.x.size(1), n = t.h * t.w, c8 = t.q.size(1);
  Tensor dx = dy.clone();
  const double dgamma = dot_all(dy, t.o.view(dy.shape()));
  add_into(g.gamma, Tensor::full({1}, dgamma, dy.dtype(), dy.device()));
  const Tensor dout = scaled(dy, t.gamma).view({b, c, n});
  Tensor dv = Tensor::empty({b, c, n}, dy.dtype(), dy.device()), da = Tensor::empty({b, n, n}, dy.dtype(), dy.device());
  layers::batched_gemm(dout, t.a, dv, {.batch = b, .m = c, .n = n, .k = n, .stride_a = c * n, .stride_b = n * n,
                                       .stride_c = c * n});
  layers::batched_gemm(dout, t.v, da, {.batch = b, .m = n, .n = n, .k = c, .trans_a = true, .stride_a = c * n,
                                       .stride_b = c * n, .stride_c = n * n});
  const Tensor de = softmax_rows_backward(da, t.a, {b * n, n, 1}, 1.0);
  Tensor dq = Tensor::empty({b, c8, n}, dy.dtype(), dy.device()), dk = Tensor::empty({b, c8, n}, dy.dtype(), dy.device());
  layers::batched_gemm(t.k, de, dq, {.batch = b, .m = c8, .n = n, .k = n, .trans_b = true, .stride_a = c8 * n,
                                     .stride_b = n * n, .stride_c = c8 * n});
  layers::batched_gemm(t.q, de, dk, {.batch = b, .m = c8, .n = n, .k = n, .stride_a = c8 * n, .stride_b = n * n,
                                     .stride_c = c8 * n});
  const Shape s4q{b, c8, t.h, t.w}, s4v{b, c, t.h, t.w};
  for (auto [d, w, gw, gb] : {std::tuple{dq.view(s4q), &a.wq, &g.wq, &g.bq}, std::tuple{dk.view(s4q), &a.wk, &g.wk, &g.bk},
                              std::tuple{dv.view(s4v), &a.wv, &g.wv, &g.bv}}) {
    const layers::Conv2dGrads cg = layers::conv2d_backward(d, t.x, *w, {}, true, true);
    add_into(*gw, cg.dw);
    add_into(*gb, cg.db);
    axpy(dx, cg.dx, 1.0);
  }
  return dx;
}

}  // namespace

DiscriminatorWeights discriminator_zero_grads(const DiscriminatorWeights& w) {
  DiscriminatorWeights g;
  g.bn_weight = zeros_like(w.bn_weight);
  g.bn_bias = zeros_like(w.bn_bias);
  for (int i = 0; i < 4; ++i) {
    g.l[i].w_bar = zeros_like(w.l[i].w_bar);
    g.l[i].bias = zeros_like(w.l[i].bias);
  }
  for (auto [src, dst] : {std::pair{&w.attn1, &g.attn1}, std::pair{&w.attn2, &g.attn2}}) {
    dst->wq = zeros_like(src->wq);
    dst->bq = zeros_like(src->bq);
    dst->wk = zeros_like(src->wk);
    dst->bk = zeros_like(src->bk);
    dst->wv = zeros_like(src->wv);
    dst->bv = zeros_like(src->bv);
    dst->gamma = zeros_like(src->gamma);
  }
  g.last_w = zeros_like(w.last_w);
  g.last_b = zeros_like(w.last_b);
  return g;
}

Tensor discriminator_forward(DiscriminatorWeights& w, const Tensor& x, bool update_uv, DiscriminatorTape* tape,
                             const layers::StatsReducer& reducer) {
  const char* who = "discriminator";
  RDD_CHECK(x.defined() && x.ndim() == 4 && x.size(1) == w.bn_weight.size(0), who, ": input ",
            x.defined() ? x.desc() : "(undefined)", " must be (N, ", w.bn_weight.size(0), ", h, w)");
  DiscriminatorTape local;
  DiscriminatorTape& t = tape ? *tape : local;
  t.x = x;
  t.x_bn = layers::batchnorm2d_forward_train(x, w.bn_weight, w.bn_bias, w.bn_mean, w.bn_var, kBnEps, kBnMomentum,
                                             &t.bn, reducer);
  ++w.num_batches_tracked;
  Tensor a = t.x_bn;
  for (int i = 0; i < 4; ++i) {
    RDD_CHECK(a.size(2) >= 2 && a.size(3) >= 2, who, ": the logits ", x.desc(), " are too small for 4 stride-2 "
              "convolutions and the final 4x4 one (the release's discriminator needs h, w >= 64)");
    t.conv_in[i] = a;
    t.conv_w[i] = sn_weight(w.l[i], update_uv, t.sigma[i]);
    t.pre_act[i] = layers::conv2d_forward(a, t.conv_w[i], w.l[i].bias, kDown);
    a = leaky_relu(t.pre_act[i], kSlope);
    if (i == 2) a = attn_forward(w.attn1, a, &t.attn1);
    if (i == 3) a = attn_forward(w.attn2, a, &t.attn2);
  }
  RDD_CHECK(a.size(2) >= 4 && a.size(3) >= 4, who, ": the logits ", x.desc(), " leave ", a.size(2), "x", a.size(3),
            " after l4, less than the final 4x4 convolution (the release's discriminator needs h, w >= 64)");
  t.last_in = a;
  return layers::conv2d_forward(a, w.last_w, w.last_b, {});
}

Tensor discriminator_backward(const DiscriminatorWeights& w, const DiscriminatorTape& t, const Tensor& dout,
                              DiscriminatorWeights& g, bool need_dx, const layers::StatsReducer& reducer) {
  layers::Conv2dGrads cg = layers::conv2d_backward(dout, t.last_in, w.last_w, {}, true, true);
  add_into(g.last_w, cg.dw);
  add_into(g.last_b, cg.db);
  Tensor d = cg.dx;
  for (int i = 3; i >= 0; --i) {
    if (i == 3) d = attn_backward(w.attn2, t.attn2, d, g.attn2);
    if (i == 2) d = attn_backward(w.attn1, t.attn1, d, g.attn1);
    const Tensor dz = leaky_relu_backward(d, t.pre_act[i], kSlope);
    cg = layers::conv2d_backward(dz, t.conv_in[i], t.conv_w[i], kDown, true, true);
    sn_backward(w.l[i], t.sigma[i], cg.dw, g.l[i].w_bar);
    add_into(g.l[i].bias, cg.db);
    d = cg.dx;
  }
  const layers::BatchNorm2dGrads bg = layers::batchnorm2d_backward(d, t.x, w.bn_weight, t.bn, reducer);
  add_into(g.bn_weight, bg.dgamma);
  add_into(g.bn_bias, bg.dbeta);
  return need_dx ? bg.dx : Tensor();
}

AdversarialLoss adversarial_losses(DiscriminatorWeights& w, DiscriminatorWeights& grads, const Tensor& s,
                                   const Tensor& t_in, double g_weight, double d_weight,
                                   const layers::StatsReducer& reducer) {
  const char* who = "adversarial_losses";
  const Tensor t = t_in.dtype() == s.dtype() ? t_in : t_in.to_dtype(s.dtype());
  RDD_CHECK(t.shape() == s.shape(), who, ": teacher logits ", t_in.desc(), " vs student ", s.desc());
  // Three forwards (the release's order), every one updating u, v and the BN statistics.
  DiscriminatorTape tg, tf, tr;
  const Tensor og = discriminator_forward(w, s, true, &tg, reducer);
  const Tensor of = discriminator_forward(w, s, true, &tf, reducer);
  const Tensor orl = discriminator_forward(w, t, true, &tr, reducer);
  // The outputs are tiny (N × 1 × h' × w'): the hinge on the host.
  const std::vector<double> vg = og.to_vector<double>(), vf = of.to_vector<double>(), vr = orl.to_vector<double>();
  const double m = double(vg.size());
  AdversarialLoss r;
  std::vector<double> dgv(vg.size(), -g_weight / m), dfv(vf.size()), drv(vr.size());
  for (size_t i = 0; i < vg.size(); ++i) {
    r.g -= vg[i] / m;
    r.d += std::max(0.0, 1.0 - vr[i]) / m + std::max(0.0, 1.0 + vf[i]) / m;
    drv[i] = 1.0 - vr[i] > 0 ? -d_weight / m : 0.0;
    dfv[i] = 1.0 + vf[i] > 0 ? d_weight / m : 0.0;
  }
  auto dev = [&](const std::vector<double>& v, const Tensor& like) {
    return Tensor::from_vector(v, like.shape()).to_dtype(like.dtype()).to(like.device());
  };
  // G's backward first (it reaches the student and, as in the release, the discriminator), then D's.
  r.grad_student = discriminator_backward(w, tg, dev(dgv, og), grads, true, reducer);
  discriminator_backward(w, tf, dev(dfv, of), grads, false, reducer);
  discriminator_backward(w, tr, dev(drv, orl), grads, false, reducer);
  return r;
}

// ------------------------------------------------------------------------------------------------
// The term
// ------------------------------------------------------------------------------------------------

AdversarialTerm::AdversarialTerm(double g_weight, double d_weight, int num_classes, int conv_dim, AdamOptions adam)
    : g_weight_(g_weight), d_weight_(d_weight), num_classes_(num_classes), conv_dim_(conv_dim), adam_options_(adam) {
  RDD_CHECK(conv_dim >= 8 && conv_dim % 8 == 0, "--adv-width ", conv_dim, " must be a positive multiple of 8");
  const int64_t k = num_classes, d = conv_dim;
  store_.add_parameter("preprocess_additional.weight", {k});
  store_.add_parameter("preprocess_additional.bias", {k});
  store_.add_buffer("preprocess_additional.running_mean", {k});
  store_.add_buffer("preprocess_additional.running_var", {k});
  store_.add_buffer("preprocess_additional.num_batches_tracked", {}, DType::i64);
  const int64_t chans[5] = {k, d, 2 * d, 4 * d, 8 * d};
  for (int i = 0; i < 4; ++i) {
    const std::string p = sn_prefix(i);
    store_.add_parameter(p + "bias", {chans[i + 1]});
    store_.add_buffer(p + "weight_u", {chans[i + 1]});
    store_.add_buffer(p + "weight_v", {chans[i] * 16});
    store_.add_parameter(p + "weight_bar", {chans[i + 1], chans[i], 4, 4});
  }
  for (auto [name, c] : {std::pair{"attn1", 4 * d}, std::pair{"attn2", 8 * d}}) {
    const std::string p = std::string(name) + ".";
    store_.add_parameter(p + "gamma", {1});
    store_.add_parameter(p + "query_conv.weight", {c / 8, c, 1, 1});
    store_.add_parameter(p + "query_conv.bias", {c / 8});
    store_.add_parameter(p + "key_conv.weight", {c / 8, c, 1, 1});
    store_.add_parameter(p + "key_conv.bias", {c / 8});
    store_.add_parameter(p + "value_conv.weight", {c, c, 1, 1});
    store_.add_parameter(p + "value_conv.bias", {c});
  }
  store_.add_parameter("last.0.weight", {1, 8 * d, 4, 4});
  store_.add_parameter("last.0.bias", {1});
}

DiscriminatorWeights AdversarialTerm::weights() {
  auto v = [&](const std::string& n) { return store_.at(n).value; };
  DiscriminatorWeights w;
  w.bn_weight = v("preprocess_additional.weight");
  w.bn_bias = v("preprocess_additional.bias");
  w.bn_mean = v("preprocess_additional.running_mean");
  w.bn_var = v("preprocess_additional.running_var");
  w.num_batches_tracked = store_.at("preprocess_additional.num_batches_tracked").value.to_vector<int64_t>()[0];
  for (int i = 0; i < 4; ++i) {
    const std::string p = sn_prefix(i);
    w.l[i] = {v(p + "weight_bar"), v(p + "bias"), v(p + "weight_u"), v(p + "weight_v")};
  }
  for (auto [name, a] : {std::pair{"attn1", &w.attn1}, std::pair{"attn2", &w.attn2}}) {
    const std::string p = std::string(name) + ".";
    *a = {v(p + "query_conv.weight"), v(p + "query_conv.bias"), v(p + "key_conv.weight"), v(p + "key_conv.bias"),
          v(p + "value_conv.weight"),  v(p + "value_conv.bias"),  v(p + "gamma")};
  }
  w.last_w = v("last.0.weight");
  w.last_b = v("last.0.bias");
  return w;
}

void AdversarialTerm::store_back(const DiscriminatorWeights& w) {
  Tensor& n = store_.at("preprocess_additional.num_batches_tracked").value;
  n.copy_from(Tensor::from_vector<int64_t>({w.num_batches_tracked}, {}).to(n.device()));
}

void AdversarialTerm::init(Device device, uint64_t seed) {
  store_.materialize(device);
  uint64_t offset = kInitOffset;
  // PyTorch's defaults: conv weights and biases U(±1/√fan_in), BN γ 1 β 0, statistics 0 / 1, γ_attn 0; the
  // spectral norm's u, v drawn N(0, 1) and normalised.
  std::vector<std::string> names;
  for (const Param& e : store_.entries()) names.push_back(e.name);
  for (const std::string& n : names) {
    Param& p = store_.at(n);
    auto ends = [&](const char* s) { return n.size() >= std::string(s).size() && n.compare(n.size() - std::string(s).size(), std::string::npos, s) == 0; };
    if (n.rfind("preprocess_additional.", 0) == 0) {
      p.value.fill_(ends(".weight") || ends(".running_var") ? 1.0 : 0.0);
    } else if (ends(".gamma")) {
      p.value.zero_();
    } else if (ends("weight_u") || ends("weight_v")) {
      fill_normal(p.value, 0, 1, seed, offset++);
      p.value.copy_from(l2n(p.value));
    } else {
      // The layer's weight name: fan_in = in·k·k of the matching weight.
      std::string wname = n;
      if (ends(".bias")) wname = n.substr(0, n.size() - 4) + (n.find(".module.") != std::string::npos ? "weight_bar" : "weight");
      const Tensor& wt = store_.at(wname).value;
      const double bound = 1.0 / std::sqrt(double(wt.numel() / wt.size(0)));
      fill_uniform(p.value, -bound, bound, seed, offset++);
    }
  }
  adam_ = std::make_unique<Adam>(store_, adam_options_);
}

void AdversarialTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor&,
                              LossTerms& terms, StudentGrads& grads) {
  RDD_CHECK(adam_, "adv: the term was not initialised (Distiller::materialize)");
  RDD_CHECK(t.main.defined(), "adv: the teacher's main logits are missing");
  OpScope profile("loss: adversarial (discriminator)", s.main.device());
  store_.zero_grad();
  DiscriminatorWeights w = weights();
  // The gradients go straight into the store's flat gradient buffer (views with the weights' layout).
  DiscriminatorWeights gv;
  auto gr = [&](const std::string& n) { return store_.at(n).grad; };
  gv.bn_weight = gr("preprocess_additional.weight");
  gv.bn_bias = gr("preprocess_additional.bias");
  for (int i = 0; i < 4; ++i) {
    const std::string p = sn_prefix(i);
    gv.l[i].w_bar = gr(p + "weight_bar");
    gv.l[i].bias = gr(p + "bias");
  }
  for (auto [name, a] : {std::pair{"attn1", &gv.attn1}, std::pair{"attn2", &gv.attn2}}) {
    const std::string p = std::string(name) + ".";
    *a = {gr(p + "query_conv.weight"), gr(p + "query_conv.bias"), gr(p + "key_conv.weight"), gr(p + "key_conv.bias"),
          gr(p + "value_conv.weight"),  gr(p + "value_conv.bias"),  gr(p + "gamma")};
  }
  gv.last_w = gr("last.0.weight");
  gv.last_b = gr("last.0.bias");
  layers::StatsReducer reducer;
  if (ranks_.world > 1 && ranks_.sum) reducer = [sum = ranks_.sum](Tensor& p) { sum(p); };
  const AdversarialLoss l = adversarial_losses(w, gv, s.main, t.main, g_weight_, d_weight_, reducer);
  store_back(w);
  have_grads_ = true;
  terms.add("adv_g", l.g, g_weight_);
  terms.add("adv_d", l.d, 0.0);  // the discriminator's loss: logged, not the student's
  StudentGrads::accumulate(grads.main, l.grad_student, 1.0);  // already λ_adv-weighted
}

double AdversarialTerm::step_flops(const OutputShapes& s) const {
  // Multiply-adds of one forward per image: the four 4×4 stride-2 convolutions, the attention (1×1
  // convolutions and two N×N products), the last 4×4 convolution; three forwards and three backwards
  // (≈ 2 forwards each) per step.
  const double k = double(s.classes), dd = double(conv_dim_);
  double h = double(s.h), w = double(s.w), macs = 0;
  const double cin[4] = {k, dd, 2 * dd, 4 * dd}, cout[4] = {dd, 2 * dd, 4 * dd, 8 * dd};
  for (int i = 0; i < 4; ++i) {
    h = std::floor((h - 2) / 2) + 1;
    w = std::floor((w - 2) / 2) + 1;
    macs += h * w * cout[i] * cin[i] * 16;
    if (i >= 2) {
      const double n = h * w, c = cout[i];
      macs += n * c * (c / 4 + c) + 2 * n * n * (c / 8 + c);
    }
  }
  macs += std::max(0.0, (h - 3) * (w - 3)) * 8 * dd * 16;
  return 2.0 * macs * double(s.n) * 9.0;
}

void AdversarialTerm::update(const StepInfo&) {
  if (!have_grads_) return;
  if (ranks_.world > 1 && ranks_.sum) {  // the release's DDP discriminator: gradients averaged over ranks
    Tensor gflat = store_.flat_grads();
    ranks_.sum(gflat);
    Tensor avg = scaled(gflat, 1.0 / ranks_.world);
    gflat.copy_from(avg);
  }
  adam_->step();
  have_grads_ = false;
}

void AdversarialTerm::save_state(std::map<std::string, Tensor>& out) const {
  for (const auto& [name, value] : store_.state_dict()) out["adv." + name] = value;
  if (adam_) {
    out["adv.adam_m"] = adam_->m();
    out["adv.adam_v"] = adam_->v();
    out["adv.adam_step"] = Tensor::from_vector<int64_t>({adam_->steps()}, {1});
  }
}

void AdversarialTerm::load_state(const std::map<std::string, Tensor>& in) {
  RDD_CHECK(adam_, "adv: load_state before init");
  for (const Param& p : store_.entries()) {
    const auto it = in.find("adv." + p.name);
    RDD_CHECK(it != in.end(), "adv: the checkpoint has no discriminator tensor adv.", p.name);
    RDD_CHECK(it->second.shape() == p.value.shape(), "adv: adv.", p.name, " is ", it->second.desc(), ", expected ",
              p.value.desc());
    Tensor dst = p.value;
    dst.copy_from(it->second.to(dst.device()).to_dtype(dst.dtype()));
  }
  for (const char* k : {"adv.adam_m", "adv.adam_v", "adv.adam_step"})
    RDD_CHECK(in.count(k), "adv: the checkpoint has no ", k, " (the discriminator's optimizer state)");
  Tensor m = adam_->m(), v = adam_->v();
  RDD_CHECK(in.at("adv.adam_m").shape() == m.shape(), "adv: adv.adam_m is ", in.at("adv.adam_m").desc(), ", expected ",
            m.desc());
  m.copy_from(in.at("adv.adam_m").to(m.device()));
  v.copy_from(in.at("adv.adam_v").to(v.device()));
  adam_->set_steps(in.at("adv.adam_step").to_vector<int64_t>()[0]);
}

}  // namespace rdd::method
