// vision/models/vit_block.h: one pre-norm transformer block with optional LayerScale.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "attention/feed_forward.h"
#include "attention/self_attention.h"

namespace attnkit::vision {

/// Learned per-channel scale of a residual branch (CaiT, DeiT III); parameter `gamma` (D).
class LayerScaleImpl : public torch::nn::Module {
 public:
  LayerScaleImpl(int64_t dim, double init);
  /// x (..., D) -> x * gamma
  torch::Tensor forward(const torch::Tensor& x) { return x * gamma; }
  torch::Tensor gamma;
};
TORCH_MODULE(LayerScale);

struct ViTBlockOptions {
  ViTBlockOptions(int64_t dim, int64_t num_heads, int64_t mlp_hidden_dim)
      : dim_(dim), num_heads_(num_heads), mlp_hidden_dim_(mlp_hidden_dim) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_heads);
  TORCH_ARG(int64_t, mlp_hidden_dim);
  TORCH_ARG(bool, qkv_bias) = true;
  TORCH_ARG(bool, qk_norm) = false;
  TORCH_ARG(double, norm_eps) = 1e-6;
  TORCH_ARG(bool, layer_scale) = false;
  TORCH_ARG(double, layer_scale_init) = 1e-5;
  TORCH_ARG(double, dropout) = 0.0;
};

/// x + ls1(attn(norm1(x))), then + ls2(mlp(norm2(x))). Names match timm's `Block`.
class ViTBlockImpl : public torch::nn::Module {
 public:
  explicit ViTBlockImpl(ViTBlockOptions options);
  void reset();
  /// x (B, N, D) -> (B, N, D)
  torch::Tensor forward(const torch::Tensor& x);
  /// Also returns the block's attention weights (B, H, N, N) in `weights` and, when asked, the
  /// normalised tokens its attention reads (norm1's output, (B, N, D)) in `attention_input`.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor& weights,
                        torch::Tensor* attention_input = nullptr);

  ViTBlockOptions options;
  torch::nn::LayerNorm norm1{nullptr};
  attention::SelfAttention attn{nullptr};
  LayerScale ls1{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
  attention::FeedForward mlp{nullptr};
  LayerScale ls2{nullptr};

 private:
  /// Both residual branches around an already computed attention output.
  torch::Tensor residuals(const torch::Tensor& x, const torch::Tensor& attended);
};
TORCH_MODULE(ViTBlock);

}  // namespace attnkit::vision
