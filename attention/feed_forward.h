// attention/feed_forward.h: the transformer MLP (Linear -> GELU -> Linear), timm's `Mlp`.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "attention/linear.h"

namespace attnkit::attention {

struct FeedForwardOptions {
  FeedForwardOptions(int64_t dim, int64_t hidden_dim) : dim_(dim), hidden_dim_(hidden_dim) {}
  TORCH_ARG(int64_t, dim);         ///< D: input and output width
  TORCH_ARG(int64_t, hidden_dim);  ///< width of the hidden layer (mlp_ratio x D in ViTs)
  TORCH_ARG(double, dropout) = 0.0;
};

/// fc2(dropout(gelu(fc1(x)))) with the exact (erf) GELU that timm, torchvision and HF ViTs use.
/// Submodule names `fc1`, `fc2` match timm's state-dict keys.
class FeedForwardImpl : public torch::nn::Module {
 public:
  explicit FeedForwardImpl(FeedForwardOptions options);
  void reset();
  /// x (..., D) -> (..., D)
  torch::Tensor forward(const torch::Tensor& x);
  /// residual + forward(x): GELU fused into fc1 and the add into fc2 where they run packed.
  torch::Tensor forward_residual(const torch::Tensor& x, const torch::Tensor& residual);

  FeedForwardOptions options;
  Linear fc1{nullptr};
  Linear fc2{nullptr};
};
TORCH_MODULE(FeedForward);

}  // namespace attnkit::attention
