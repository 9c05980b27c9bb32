#include "deploy/bn_folding.h"

#include <cmath>

namespace rdd::deploy {

namespace {
Tensor host(const Tensor& t) { return t.device().is_cpu() ? t : t.to(Device::cpu()); }
}  // namespace

FoldedConv fold_batchnorm(const layers::Conv2d& conv, const layers::BatchNorm2d& bn) {
  RDD_CHECK(bn.channels() == conv.out_channels(), "fold_batchnorm: ", bn.name(), " has ", bn.channels(),
            " channels but ", conv.name(), " has ", conv.out_channels(), " outputs");
  const Tensor w = host(conv.weight()->value);  // (K, C/g, R, S)
  const Tensor gamma = host(bn.weight()->value), beta = host(bn.bias()->value);
  const Tensor mean = host(bn.running_mean()->value), var = host(bn.running_var()->value);
  const Tensor b = conv.bias() ? host(conv.bias()->value) : Tensor();
  const int64_t k_count = w.size(0), per_k = w.numel() / k_count;
  FoldedConv f{Tensor::empty(w.shape()), Tensor::empty({k_count})};
  const float* wp = w.data<float>();
  float* fw = f.weight.data<float>();
  for (int64_t k = 0; k < k_count; ++k) {
    const double a = double(gamma.at<float>(k)) / std::sqrt(double(var.at<float>(k)) + bn.eps());
    for (int64_t i = 0; i < per_k; ++i) fw[k * per_k + i] = float(a * double(wp[k * per_k + i]));
    const double bk = b.defined() ? double(b.at<float>(k)) : 0.0;
    f.bias.data<float>()[k] = float(a * (bk - double(mean.at<float>(k))) + double(beta.at<float>(k)));
  }
  return f;
}

}  // namespace rdd::deploy
