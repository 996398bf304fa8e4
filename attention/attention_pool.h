// attention/attention_pool.h: learned-query attention pooling over tokens (the ViT `map` head,
// timm's AttentionPoolLatent), built on the shared SpatialAttention.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "attention/feed_forward.h"
#include "attention/spatial_attention.h"

namespace attnkit::attention {

struct AttentionPoolOptions {
  AttentionPoolOptions(int64_t dim, int64_t num_heads) : dim_(dim), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, dim);                 ///< D: token width
  TORCH_ARG(int64_t, num_heads);           ///< heads of the latent query's attention
  TORCH_ARG(int64_t, mlp_hidden_dim) = 0;  ///< 0 = 4 x D
  TORCH_ARG(bool, qkv_bias) = true;
  TORCH_ARG(bool, qk_norm) = false;
  TORCH_ARG(double, norm_eps) = 1e-6;
};

/// pooled = y + mlp(norm(y)), y = proj(attention(tokens, query = latent)).
/// Parameters: `latent` (1, 1, D), `attention` (SpatialAttention, dot product: `q`, `kv`),
/// `proj`, `norm`, `mlp` (`fc1`, `fc2`).
class AttentionPoolImpl : public torch::nn::Module {
 public:
  explicit AttentionPoolImpl(AttentionPoolOptions options);
  void reset();
  /// tokens (B, N, D) -> pooled (B, D)
  torch::Tensor forward(const torch::Tensor& tokens);
  /// tokens (B, N, D) -> context = pooled (B, D), weights (B, N) (mean over heads),
  /// head_weights (B, H, N).
  AttentionOutput pool(const torch::Tensor& tokens);

  AttentionPoolOptions options;
  torch::Tensor latent;
  SpatialAttention attention{nullptr};
  torch::nn::Linear proj{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  FeedForward mlp{nullptr};
};
TORCH_MODULE(AttentionPool);

}  // namespace attnkit::attention
