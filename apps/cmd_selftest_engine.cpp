// Engine checks for `rdd selftest`: the RNG against its known answers, and (with a GPU) the device
// copies, conversions, random fills and a cuDNN graph-API convolution against the CPU.
#include <vector>

#include "apps/cmd_selftest.h"
#include "engine/cudnn_graph.h"
#include "engine/numeric_check.h"
#include "engine/philox.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace rdd::apps {

namespace {
CheckRow from_comparison(const std::string& check, const std::string& device, const Comparison& c, Tolerance tol) {
  return {"engine", check, device, c.max_abs_err, tol.atol, c.ok, c.ok ? "" : c.message()};
}

// A plain-loop convolution, accumulated in double: x (N, C, H, W) f32, w (K, C/groups, R, S) f32 on the CPU.
Tensor reference_conv(const Tensor& x, const Tensor& w, const cudnn::ConvParams& p) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t K = w.size(0), Cg = w.size(1), R = w.size(2), S = w.size(3);
  const int64_t P = cudnn::conv_output_size(int(H), int(R), p.pad_h, p.stride_h, p.dilation_h);
  const int64_t Q = cudnn::conv_output_size(int(W), int(S), p.pad_w, p.stride_w, p.dilation_w);
  Tensor y = Tensor::empty({N, K, P, Q});
  const float *xv = x.data<float>(), *wv = w.data<float>();
  float* yv = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < Q; ++j) {
          double acc = 0;
          const int64_t c0 = k / (K / p.groups) * Cg;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t s = 0; s < S; ++s) {
                const int64_t h = i * p.stride_h - p.pad_h + r * p.dilation_h;
                const int64_t v = j * p.stride_w - p.pad_w + s * p.dilation_w;
                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                acc += double(xv[((n * C + c0 + c) * H + h) * W + v]) * wv[((k * Cg + c) * R + r) * S + s];
              }
          yv[((n * K + k) * P + i) * Q + j] = float(acc);
        }
  return y;
}
}  // namespace

std::vector<CheckRow> selftest_engine(const SelftestOptions& o) {
  std::vector<CheckRow> rows;
  {  // Random123's all-zero known answer
    const philox::U32x4 r = philox::philox4x32_10(philox::U32x4{{0, 0, 0, 0}}, 0, 0);
    const bool ok = r.v[0] == 0x6627e8d5u && r.v[1] == 0xe169c58du && r.v[2] == 0xbc57ac4cu && r.v[3] == 0x9b00dbd8u;
    rows.push_back({"engine", "philox4x32-10 known answer", "cpu", 0, 0, ok, ok ? "" : "output differs from Random123"});
  }
  Tensor x = Tensor::empty({2, 3, 17, 19});
  fill_uniform(x, -1, 1, o.seed, 1);
  {
    const Tensor back = x.to_layout(Layout::NHWC).to_layout(Layout::NCHW);
    rows.push_back(from_comparison("NCHW->NHWC->NCHW round trip", "cpu", compare_tensors(back, x, {0, 0}), {0, 0}));
  }
  if (!o.gpu) return rows;
  const Device g = Device::cuda(0);
  rows.push_back(from_comparison("host->device->host copy", device_label(g), compare_tensors(x.to(g).to(Device::cpu()), x, {0, 0}), {0, 0}));
  rows.push_back(from_comparison("NHWC reorder vs CPU", device_label(g),
                                 compare_tensors(x.to(g).to_layout(Layout::NHWC), x.to_layout(Layout::NHWC), {0, 0}), {0, 0}));
  rows.push_back(from_comparison("bf16 conversion vs CPU", device_label(g),
                                 compare_tensors(x.to(g).to_dtype(DType::bf16), x.to_dtype(DType::bf16), {0, 0}), {0, 0}));
  Tensor cu = Tensor::empty({4096}), gu = Tensor::empty({4096}, DType::f32, g);
  fill_uniform(cu, -3, 3, o.seed, 2);
  fill_uniform(gu, -3, 3, o.seed, 2);
  rows.push_back(from_comparison("philox uniform fill vs CPU", device_label(g), compare_tensors(gu, cu, {0, 0}), {0, 0}));
  fill_normal(cu, 0, 1, o.seed, 3);
  fill_normal(gu, 0, 1, o.seed, 3);
  const Tolerance t = default_tolerance(DType::f32);
  rows.push_back(from_comparison("philox normal fill vs CPU", device_label(g), compare_tensors(gu, cu, t), t));
  // cuDNN graph API: a grouped, strided 3x3 convolution on odd sizes vs the loops above. Real GPUs only:
  // the emulated device has no cuDNN (its convolutions are the CPU reference; the layers rows cover them).
  if (!cuda_is_emulated()) {
    cudnn::ConvParams p;
    p.pad_h = p.pad_w = 1;
    p.stride_h = 2;
    p.groups = 2;
    Tensor cw = Tensor::empty({6, 2, 3, 3});
    fill_uniform(cw, -1, 1, o.seed, 4);
    Tensor x4 = Tensor::empty({2, 4, 17, 19});
    fill_uniform(x4, -1, 1, o.seed, 5);
    const Tensor want = reference_conv(x4, cw, p);
    const char* check = "cuDNN conv forward (graph API) vs CPU";
    const Tolerance ct{1e-4, 1e-4};
    try {
      Tensor got = Tensor::empty(want.shape(), DType::f32, g);
      cudnn::conv_forward(x4.to(g), cw.to(g), got, p);
      rows.push_back(from_comparison(check, device_label(g), compare_tensors(got, want, ct), ct));
    } catch (const Error& e) {  // keep the rows above; report this one as failed with cuDNN's words
      rows.push_back({"engine", check, device_label(g), 0, ct.atol, false, e.what()});
    }
  }
  return rows;
}

}  // namespace rdd::apps
