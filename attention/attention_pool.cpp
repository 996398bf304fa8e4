// attention/attention_pool.cpp: the latent query attends over the tokens, then an MLP residual.
#include "attention/attention_pool.h"
#include "attention/layer_norm.h"

#include <cmath>

#include <torch/torch.h>

namespace attnkit::attention {

AttentionPoolImpl::AttentionPoolImpl(AttentionPoolOptions options_) : options(std::move(options_)) {
  reset();
}

void AttentionPoolImpl::reset() {
  const int64_t dim = options.dim();
  // timm initialises the latent with a truncated normal of std D^-0.5.
  latent = register_parameter(
      "latent",
      torch::randn({1, 1, dim}).mul_(1.0 / std::sqrt(static_cast<double>(dim))).clamp_(-2.0, 2.0));
  attention = register_module("attention", SpatialAttention(SpatialAttentionOptions(dim, dim)
                                                                .score(AttentionScore::kDotProduct)
                                                                .num_heads(options.num_heads())
                                                                .qkv_bias(options.qkv_bias())
                                                                .qk_norm(options.qk_norm())
                                                                .norm_eps(options.norm_eps())));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  norm = register_module(
      "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(options.norm_eps())));
  const int64_t hidden = options.mlp_hidden_dim() > 0 ? options.mlp_hidden_dim() : 4 * dim;
  mlp = register_module("mlp", FeedForward(FeedForwardOptions(dim, hidden)));
}

torch::Tensor AttentionPoolImpl::forward(const torch::Tensor& tokens) {
  return pool(tokens).context;
}

AttentionOutput AttentionPoolImpl::pool(const torch::Tensor& tokens) {
  TORCH_CHECK(tokens.dim() == 3 && tokens.size(2) == options.dim(),
              "AttentionPool: expected tokens (B, N, ", options.dim(), "), got ", tokens.sizes());
  const int64_t batch = tokens.size(0);
  auto query = latent.view({1, options.dim()}).expand({batch, options.dim()});  // (B, D)
  auto out = attention(tokens, query);
  auto pooled = proj(out.context);  // (B, D)
  out.context = pooled + mlp(layer_norm(norm, pooled));
  return out;
}

}  // namespace attnkit::attention
