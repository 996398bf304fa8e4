// attention/self_attention.h: multi-head self-attention with a fused qkv projection that can
// also return its attention weights (for rollout and overlays).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "attention/linear.h"

namespace attnkit::attention {

struct SelfAttentionOptions {
  SelfAttentionOptions(int64_t dim, int64_t num_heads) : dim_(dim), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, dim);        ///< D: token width; must be divisible by num_heads
  TORCH_ARG(int64_t, num_heads);  ///< H
  TORCH_ARG(bool, qkv_bias) = true;
  /// LayerNorm over each head's q and k before the product (timm `qk_norm`).
  TORCH_ARG(bool, qk_norm) = false;
  TORCH_ARG(double, norm_eps) = 1e-6;
  TORCH_ARG(double, attention_dropout) = 0.0;
  TORCH_ARG(double, projection_dropout) = 0.0;
};

/// The output and, when asked for, the weights of every head.
struct SelfAttentionOutput {
  torch::Tensor output;   ///< (B, N, D)
  torch::Tensor weights;  ///< (B, H, N, N), rows sum to 1; part of the autograd graph
};

/// softmax(q k^T / sqrt(D/H)) v per head, then a linear projection. Submodule names (`qkv`,
/// `proj`, `q_norm`, `k_norm`) match timm's `Attention`, so timm checkpoints load as they are.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(SelfAttentionOptions options);
  void reset();
  /// x (B, N, D) -> (B, N, D)
  torch::Tensor forward(const torch::Tensor& x);
  /// x (B, N, D) -> output (B, N, D) and weights (B, H, N, N).
  SelfAttentionOutput forward_with_weights(const torch::Tensor& x);
  /// residual (B, N, D) + forward(x), with the add fused into the output projection where it
  /// runs packed; the weights too when `keep_weights`.
  SelfAttentionOutput forward_residual(const torch::Tensor& x, const torch::Tensor& residual,
                                       bool keep_weights = false);

  SelfAttentionOptions options;
  Linear qkv{nullptr};
  Linear proj{nullptr};
  torch::nn::LayerNorm q_norm{nullptr};  ///< only with qk_norm
  torch::nn::LayerNorm k_norm{nullptr};  ///< only with qk_norm

 private:
  SelfAttentionOutput attend(const torch::Tensor& x, bool keep_weights,
                             const torch::Tensor& residual);
  /// The softmax(q k^T / sqrt(hd)) v core on LibTorch's ops (training, gradients, qk_norm).
  SelfAttentionOutput attend_core(const torch::Tensor& qkv_out, int64_t batch, int64_t tokens);
};
TORCH_MODULE(SelfAttention);

}  // namespace attnkit::attention
