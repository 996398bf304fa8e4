// attention/layer_norm.h: LayerNorm that also works under CPU bf16 autocast.
#pragma once

#include <torch/nn/modules/normalization.h>

namespace attnkit::attention {

/// Applies `norm` to `x` cast to the norm's parameter dtype. Under CPU bf16 autocast, linear
/// layers return bf16 while LibTorch 1.13's CPU layer_norm insists on input and weight sharing
/// one dtype (autocast does not cover it). Outside autocast the cast is a no-op.
inline torch::Tensor layer_norm(torch::nn::LayerNorm& norm, const torch::Tensor& x) {
  return norm(x.to(norm->weight.scalar_type()));
}

}  // namespace attnkit::attention
