// CIRKD (see cirkd.h), composed from rdd/kd_ops.h, rdd/pixel_ops.h, layers/matmul.h and the layer modules.
#include "rdd/cirkd.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <vector>

#include "engine/op_profile.h"
#include "engine/rng.h"
#include "layers/matmul.h"
#include "rdd/kd_ops.h"
#include "rdd/pixel_ops.h"

namespace rdd::method {

namespace {

// Philox stream ids of the term's random choices: initialisation, and per iteration the enqueued
// positions and the contrast rows.
constexpr uint64_t kInitOffset = 0x4349524b00000000ull;  // "CIRK"
constexpr uint64_t kStepOffset = 0x4349524b10000000ull;

Tensor as_dtype(const Tensor& t, DType d) { return t.dtype() == d ? t : t.to_dtype(d); }

Tensor index_tensor(const std::vector<int64_t>& v, Device d) {
  Tensor t = Tensor::from_vector(v, {int64_t(v.size())});
  return d.is_cpu() ? t : t.to(d);
}

// k distinct values of [0, n), ascending (a partial Fisher–Yates shuffle drawn from `rng`).
std::vector<int64_t> sample_sorted(int64_t n, int64_t k, PhiloxStream& rng) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  k = std::min(k, n);
  for (int64_t i = 0; i < k; ++i) std::swap(v[size_t(i)], v[size_t(rng.next_int(i, n))]);
  v.resize(size_t(k));
  std::sort(v.begin(), v.end());
  return v;
}

void normalize_rows_in_place(Tensor& rows) {
  if (rows.numel() == 0) return;
  rows = l2_normalize_rows(rows, {rows.size(0), rows.size(1), 1}).y;
}

}  // namespace

const char* pixel_queue_fill_name(PixelQueueFill f) { return f == PixelQueueFill::klass ? "class" : "released"; }

CirkdMiniBatch cirkd_minibatch(const Tensor& f_s, const Tensor& f_t_in, double tau) {
  const char* who = "cirkd_minibatch";
  RDD_CHECK(f_s.defined() && f_s.ndim() == 4, who, ": student feature must be (N, C, h, w)");
  RDD_CHECK(f_t_in.defined() && f_t_in.ndim() == 4 && f_t_in.size(0) == f_s.size(0) && f_t_in.size(2) == f_s.size(2) &&
                f_t_in.size(3) == f_s.size(3),
            who, ": the teacher feature ", f_t_in.desc(), " does not match the student's ", f_s.desc());
  RDD_CHECK(tau > 0, who, ": temperature ", tau, " must be positive");
  const Tensor f_t = as_dtype(f_t_in, f_s.dtype());
  const int64_t n = f_s.size(0), cs = f_s.size(1), ct = f_t.size(1), p = f_s.size(2) * f_s.size(3);
  const L2Normalized ns = l2_normalize_rows(f_s, {n, cs, p}), nt = l2_normalize_rows(f_t, {n, ct, p});
  Tensor dn = Tensor::zeros(ns.y.shape(), f_s.dtype(), f_s.device());
  Tensor ss = Tensor::empty({n, p, p}, f_s.dtype(), f_s.device()), st = Tensor::empty({n, p, p}, f_s.dtype(), f_s.device());
  CirkdMiniBatch r;
  const double per_row = double(p) * double(n * n);  // 'batchmean' over the p rows, then ÷ B²
  for (int64_t i = 0; i < n; ++i) {
    const Tensor ai = ns.y.slice(i, i + 1), bi = nt.y.slice(i, i + 1);
    // S[j] = F_iᵀ·F_j for every j (F_i shared: stride 0).
    layers::batched_gemm(ai, ns.y, ss, {.batch = n, .m = p, .n = p, .k = cs, .trans_a = true, .stride_a = 0,
                                        .stride_b = cs * p, .stride_c = p * p});
    layers::batched_gemm(bi, nt.y, st, {.batch = n, .m = p, .n = p, .k = ct, .trans_a = true, .stride_a = 0,
                                        .stride_b = ct * p, .stride_c = p * p});
    const KLRows kl = kl_rows(st, ss, tau, n * p, p, 1, 1.0 / (tau * per_row), true);
    r.loss += sum_all(kl.kl) / per_row;
    // d/dF_i += Σ_j F_j·dS_jᵀ; d/dF_j += F_i·dS_j.
    Tensor di = dn.slice(i, i + 1);
    for (int64_t j = 0; j < n; ++j)
      layers::batched_gemm(ns.y.slice(j, j + 1), kl.grad.slice(j, j + 1), di,
                           {.batch = 1, .m = cs, .n = p, .k = p, .trans_b = true}, 1.0, 1.0);
    layers::batched_gemm(ai, kl.grad, dn, {.batch = n, .m = cs, .n = p, .k = p, .stride_a = 0, .stride_b = p * p,
                                           .stride_c = cs * p},
                         1.0, 1.0);
  }
  r.grad = l2_normalize_rows_backward(dn, ns, {n, cs, p}).view(f_s.shape());
  return r;
}

CirkdMemory cirkd_memory_contrast(const Tensor& s_proj, const Tensor& t_feat_in, const Tensor& labels_small,
                                  const Tensor& pixel_keys, const Tensor& region_keys, double tau, double kd_t,
                                  int ignore_index, double pixel_weight, double region_weight) {
  const char* who = "cirkd_memory_contrast";
  RDD_CHECK(s_proj.defined() && s_proj.ndim() == 4, who, ": projected student feature must be (N, D, h, w)");
  const Tensor t_feat = as_dtype(t_feat_in, s_proj.dtype());
  RDD_CHECK(t_feat.shape() == s_proj.shape(), who, ": teacher feature ", t_feat_in.desc(),
            " must match the projected student feature ", s_proj.desc(), " (the head maps C_S to C_T)");
  RDD_CHECK(tau > 0 && kd_t > 0, who, ": temperatures must be positive");
  const int64_t n = s_proj.size(0), d = s_proj.size(1), p = s_proj.size(2) * s_proj.size(3);
  require_dtype(labels_small, DType::i32, who, "labels");
  RDD_CHECK(labels_small.numel() == n * p, who, ": labels ", labels_small.desc(), " for ", n, " images of ", p, " pixels");
  const std::vector<int32_t> y = labels_small.to_vector<int32_t>();
  std::vector<int64_t> valid;
  for (int64_t i = 0; i < n * p; ++i)
    if (y[size_t(i)] != ignore_index) valid.push_back(i);
  CirkdMemory r;
  r.anchors = int64_t(valid.size());
  r.grad = Tensor::zeros(s_proj.shape(), s_proj.dtype(), s_proj.device());
  if (valid.empty()) return r;  // the release's NaN: rdd gives 0 (and no gradient)
  const L2Normalized ns = l2_normalize_rows(s_proj, {n, d, p}), nt = l2_normalize_rows(t_feat, {n, d, p});
  const Tensor idx = index_tensor(valid, s_proj.device());
  const Tensor as = gather_pixels(ns.y.view({n, d, p}), idx), at = gather_pixels(nt.y.view({n, d, p}), idx);
  const int64_t m = r.anchors;
  Tensor das = Tensor::zeros({m, d}, s_proj.dtype(), s_proj.device());
  auto contrast = [&](const Tensor& keys_in, double weight) {
    const Tensor keys = as_dtype(keys_in, s_proj.dtype());
    RDD_CHECK(keys.ndim() == 2 && keys.size(1) == d, who, ": keys ", keys_in.desc(), " must be (K, ", d, ")");
    const int64_t k = keys.size(0);
    Tensor ls = Tensor::empty({m, k}, s_proj.dtype(), s_proj.device()), lt = Tensor::empty({m, k}, s_proj.dtype(), s_proj.device());
    const layers::GemmShape g{.batch = 1, .m = m, .n = k, .k = d, .trans_b = true};
    layers::batched_gemm(as, keys, ls, g, 1.0 / tau);
    layers::batched_gemm(at, keys, lt, g, 1.0 / tau);
    // T²·KL/M: d/d ls = T·(p_s − p_t)/M; then d/d as = that·keys/τ.
    const KLRows kl = kl_rows(lt, ls, kd_t, m, k, 1, kd_t / double(m), true);
    layers::batched_gemm(kl.grad, keys, das, {.batch = 1, .m = m, .n = d, .k = k}, weight / tau, 1.0);
    return sum_all(kl.kl) * kd_t * kd_t / double(m);
  };
  r.pixel = contrast(pixel_keys, pixel_weight);
  r.region = contrast(region_keys, region_weight);
  r.grad = l2_normalize_rows_backward(scatter_pixels(das, idx, n, d, p).view(ns.y.shape()), ns, {n, d, p})
               .view(s_proj.shape());
  return r;
}

void cirkd_enqueue(const Tensor& t_feat_all, const Tensor& labels_all, Tensor& pixel_queue, Tensor& pixel_ptr,
                   Tensor& region_queue, Tensor& region_ptr, const CirkdOptions& o, uint64_t rng_seed,
                   uint64_t rng_offset) {
  const char* who = "cirkd_enqueue";
  RDD_CHECK(t_feat_all.ndim() == 4, who, ": teacher features ", t_feat_all.desc(), " must be (B, D, h, w)");
  const int64_t b = t_feat_all.size(0), d = t_feat_all.size(1), p = t_feat_all.size(2) * t_feat_all.size(3);
  const int64_t k = o.num_classes, rp = pixel_queue.size(1), rr = region_queue.size(1);
  RDD_CHECK(pixel_queue.ndim() == 3 && pixel_queue.size(0) == k && pixel_queue.size(2) == d && region_queue.ndim() == 3 &&
                region_queue.size(0) == k && region_queue.size(2) == d,
            who, ": queues ", pixel_queue.desc(), ", ", region_queue.desc(), " for ", k, " classes of ", d, " channels");
  RDD_CHECK(labels_all.numel() == b * p, who, ": labels ", labels_all.desc(), " for ", b, " images of ", p, " pixels");
  const std::vector<int32_t> y = labels_all.to_vector<int32_t>();
  std::vector<int64_t> pix_ptr = pixel_ptr.to_vector<int64_t>(), seg_ptr = region_ptr.to_vector<int64_t>();
  PhiloxStream rng(rng_seed, rng_offset);
  // The plan, in the release's order (image by image, classes ascending); a row written twice in one step
  // keeps the later write.
  std::map<int64_t, std::pair<int64_t, int64_t>> region_rows;  // dst row → (image, class)
  std::map<int64_t, int64_t> pixel_rows;                        // dst row → source pixel b·P + position
  for (int64_t i = 0; i < b; ++i) {
    std::vector<std::vector<int64_t>> members(static_cast<size_t>(k));
    for (int64_t q = 0; q < p; ++q) {
      const int32_t c = y[size_t(i * p + q)];
      if (c == o.ignore_index) continue;
      RDD_CHECK(c >= 0 && c < k, who, ": label ", c, " at image ", i, " pixel ", q, " is not a class of ", k);
      members[size_t(c)].push_back(q);
    }
    for (int64_t c = 0; c < k; ++c) {
      const std::vector<int64_t>& mine = members[size_t(c)];
      if (mine.empty()) continue;
      region_rows[c * rr + seg_ptr[size_t(c)]] = {i, c};
      seg_ptr[size_t(c)] = (seg_ptr[size_t(c)] + 1) % rr;
      const int64_t count = int64_t(mine.size()), kk = std::min(count, o.pixel_update_freq);
      std::vector<int64_t> pick = sample_sorted(count, kk, rng);  // perm[:K] of range(count), ascending
      if (o.fill == PixelQueueFill::klass)
        for (int64_t& v : pick) v = mine[size_t(v)];  // K pixels of class c (ascending: mine is sorted)
      RDD_CHECK(kk <= rp, who, ": the pixel memory (", rp, " rows per class) cannot take the ", kk,
                " pixels of class ", c, " in image ", i, " (make it at least ", o.pixel_update_freq, ")");
      int64_t first = pix_ptr[size_t(c)];
      if (first + kk >= rp) {
        first = rp - kk;
        pix_ptr[size_t(c)] = 0;
      } else {
        pix_ptr[size_t(c)] = (pix_ptr[size_t(c)] + kk) % rp;
      }
      for (int64_t j = 0; j < kk; ++j) pixel_rows[c * rp + first + j] = i * p + pick[size_t(j)];
    }
  }
  const Device dev = t_feat_all.device();
  const Tensor feats = l2_normalize_rows(t_feat_all, {b, d, p}).y.view({b, d, p});
  if (!region_rows.empty()) {
    std::vector<int64_t> dst, img, cls;
    for (const auto& [row, ic] : region_rows) {
      dst.push_back(row);
      img.push_back(ic.first);
      cls.push_back(ic.second);
    }
    const Tensor labels_dev = labels_all.device() == dev ? labels_all : labels_all.to(dev);
    Tensor rows = class_means(feats, labels_dev.view({b, p}), index_tensor(img, dev), index_tensor(cls, dev));
    normalize_rows_in_place(rows);
    Tensor q = region_queue.view({k * rr, d});
    put_rows(q, index_tensor(dst, dev), as_dtype(rows, q.dtype()));
  }
  if (!pixel_rows.empty()) {
    std::vector<int64_t> dst, src;
    for (const auto& [row, s] : pixel_rows) {
      dst.push_back(row);
      src.push_back(s);
    }
    Tensor rows = gather_pixels(feats, index_tensor(src, dev));
    normalize_rows_in_place(rows);  // the release normalises the (already unit) features again
    Tensor q = pixel_queue.view({k * rp, d});
    put_rows(q, index_tensor(dst, dev), as_dtype(rows, q.dtype()));
  }
  pixel_ptr.copy_from(Tensor::from_vector(pix_ptr, {k}).to(pixel_ptr.device()));
  region_ptr.copy_from(Tensor::from_vector(seg_ptr, {k}).to(region_ptr.device()));
}

CirkdTerm::CirkdTerm(ParamStore& store, double minibatch_weight, double pixel_weight, double region_weight,
                     CirkdOptions o, int student_channels, int teacher_channels)
    : minibatch_weight_(minibatch_weight),
      pixel_weight_(pixel_weight),
      region_weight_(region_weight),
      opt_(o),
      teacher_channels_(teacher_channels),
      conv0_(store, "cirkd.project_head.0", student_channels, teacher_channels, 1),
      bn_(store, "cirkd.project_head.1", teacher_channels),
      conv3_(store, "cirkd.project_head.3", teacher_channels, teacher_channels, 1) {
  RDD_CHECK(o.num_classes >= 1 && o.pixel_memory_size >= 1 && o.region_memory_size >= 1 && o.pixel_contrast_size >= 1 &&
                o.region_contrast_size >= 1 && o.pixel_update_freq >= 1,
            "cirkd: memory and contrast sizes must be ≥ 1 (pixel memory ", o.pixel_memory_size, ", region memory ",
            o.region_memory_size, ", contrast ", o.pixel_contrast_size, " / ", o.region_contrast_size, ")");
  pixel_queue_ = store.add_buffer("cirkd.teacher_pixel_queue", {o.num_classes, o.pixel_memory_size, teacher_channels});
  pixel_ptr_ = store.add_buffer("cirkd.pixel_queue_ptr", {o.num_classes}, DType::i64);
  region_queue_ = store.add_buffer("cirkd.teacher_segment_queue", {o.num_classes, o.region_memory_size, teacher_channels});
  region_ptr_ = store.add_buffer("cirkd.segment_queue_ptr", {o.num_classes}, DType::i64);
}

void CirkdTerm::init(Device, uint64_t seed) {
  conv0_.reset_parameters(seed, kInitOffset);
  conv3_.reset_parameters(seed, kInitOffset + 1);
  bn_.reset_parameters();
  // The release: randn, normalised along the feature dimension; pointers 0.
  for (Param* q : {pixel_queue_, region_queue_}) {
    fill_normal(q->value, 0.0, 1.0, seed, kInitOffset + (q == pixel_queue_ ? 2 : 3));
    Tensor rows = q->value.view({q->value.numel() / teacher_channels_, int64_t(teacher_channels_)});
    normalize_rows_in_place(rows);
    q->value.copy_from(rows.view(q->value.shape()));
  }
  pixel_ptr_->value.zero_();
  region_ptr_->value.zero_();
}

void CirkdTerm::set_ranks(const RankContext& ranks) {
  ranks_ = ranks;
  if (ranks.sum) bn_.set_stats_reducer([sum = ranks.sum](Tensor& partial) { sum(partial); });
}

void CirkdTerm::compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels,
                        LossTerms& terms, StudentGrads& grads) {
  const char* who = "cirkd";
  RDD_CHECK(s.feature.defined() && t.feature.defined(), who, ": the student's and the teacher's head features are needed");
  RDD_CHECK(t.feature.size(1) == teacher_channels_, who, ": the teacher feature ", t.feature.desc(), " has not the ",
            teacher_channels_, " channels the projection head was built for");
  OpScope profile("loss: CIRKD (mini-batch + memory)", s.feature.device());
  const Tensor f_s = s.feature, f_t = as_dtype(t.feature, DType::f32);
  const int64_t n = f_s.size(0), h = f_s.size(2), w = f_s.size(3);
  const Device dev = f_s.device();

  // Mini-batch pixel-to-pixel on the raw features.
  const CirkdMiniBatch mb = cirkd_minibatch(f_s, f_t, opt_.contrast_temperature);
  StudentGrads::accumulate(grads.feature, mb.grad, minibatch_weight_);

  // The projection head (train mode: BN batch statistics, SyncBN over ranks, running statistics updated).
  const Tensor proj = conv3_.forward(relu_.forward(bn_.forward(conv0_.forward(f_s))));
  const Tensor small = nearest_labels(labels, h, w).view({n, h * w});

  // The memory, updated with every rank's batch before the contrast (the release's order).
  Tensor t_all = f_t, y_all = small;
  if (ranks_.world > 1) {
    RDD_CHECK(bool(ranks_.sum), who, ": several ranks but no way to gather their batches");
    Tensor tf = Tensor::zeros({ranks_.world * n, f_t.size(1), h, w}, DType::f32, dev);
    tf.slice(ranks_.rank * n, (ranks_.rank + 1) * n).copy_from(f_t);
    ranks_.sum(tf);
    Tensor yf = Tensor::zeros({ranks_.world * n, h * w}, DType::f32, dev);
    yf.slice(ranks_.rank * n, (ranks_.rank + 1) * n).copy_from(small.to_dtype(DType::f32));
    ranks_.sum(yf);
    t_all = tf;
    y_all = yf.to_dtype(DType::i32);
  }
  const uint64_t offset = kStepOffset + 2 * uint64_t(step.iteration);
  cirkd_enqueue(t_all, y_all, pixel_queue_->value, pixel_ptr_->value, region_queue_->value, region_ptr_->value, opt_,
                step.seed, offset);

  // The keys: the same random rows of every class's queue (all of them when the contrast size covers it).
  PhiloxStream rng(step.seed, offset + 1);
  auto keys = [&](const Param* q, int64_t contrast) {
    const int64_t k = q->value.size(0), r = q->value.size(1);
    std::vector<int64_t> rows = contrast >= r ? sample_sorted(r, r, rng) : sample_sorted(r, contrast, rng);
    std::vector<int64_t> idx;
    for (int64_t c = 0; c < k; ++c)
      for (int64_t v : rows) idx.push_back(c * r + v);
    return take_rows(q->value.view({k * r, q->value.size(2)}), index_tensor(idx, dev));
  };
  const Tensor pixel_keys = keys(pixel_queue_, opt_.pixel_contrast_size);
  const Tensor region_keys = keys(region_queue_, opt_.region_contrast_size);
  const CirkdMemory mem = cirkd_memory_contrast(proj, f_t, small, pixel_keys, region_keys, opt_.contrast_temperature,
                                                opt_.contrast_kd_temperature, opt_.ignore_index, pixel_weight_,
                                                region_weight_);
  if (mem.anchors > 0) {
    const Tensor d_in = conv0_.backward(bn_.backward(relu_.backward(conv3_.backward(mem.grad))));
    StudentGrads::accumulate(grads.feature, d_in, 1.0);  // mem.grad carries the weights
  }
  terms.add("cirkd_minibatch", mb.loss, minibatch_weight_);
  terms.add("cirkd_pixel", mem.pixel, pixel_weight_);
  terms.add("cirkd_region", mem.region, region_weight_);
}

double CirkdTerm::step_flops(const OutputShapes& s) const {
  const double n = double(s.n), p = double(s.h * s.w), cs = double(s.student_channels), ct = double(teacher_channels_);
  // Mini-batch: N² similarity maps of p × p per side, the student's backward twice that.
  const double minibatch = 2.0 * n * n * p * p * (cs + ct) + 4.0 * n * n * p * p * cs + 10.0 * n * n * p * p;
  // Projection head (two 1×1 convolutions, forward and backward) and the contrasts against the keys.
  const double head = 6.0 * n * p * (cs * ct + ct * ct);
  const double keys = double(opt_.num_classes) * double(opt_.pixel_contrast_size + opt_.region_contrast_size);
  const double contrast = 6.0 * n * p * keys * ct;
  return minibatch + head + contrast;
}

}  // namespace rdd::method
