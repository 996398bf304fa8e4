// vision/models/vit_block.cpp: the pre-norm transformer block.
#include "vision/models/vit_block.h"

#include <torch/torch.h>

namespace attnkit::vision {

LayerScaleImpl::LayerScaleImpl(int64_t dim, double init) {
  gamma = register_parameter("gamma", torch::full({dim}, init));
}

ViTBlockImpl::ViTBlockImpl(ViTBlockOptions options_) : options(std::move(options_)) { reset(); }

void ViTBlockImpl::reset() {
  const int64_t dim = options.dim();
  const auto norm = torch::nn::LayerNormOptions({dim}).eps(options.norm_eps());
  norm1 = register_module("norm1", torch::nn::LayerNorm(norm));
  attn = register_module(
      "attn", attention::SelfAttention(attention::SelfAttentionOptions(dim, options.num_heads())
                                           .qkv_bias(options.qkv_bias())
                                           .qk_norm(options.qk_norm())
                                           .norm_eps(options.norm_eps())
                                           .projection_dropout(options.dropout())));
  norm2 = register_module("norm2", torch::nn::LayerNorm(norm));
  mlp = register_module(
      "mlp",
      attention::FeedForward(
          attention::FeedForwardOptions(dim, options.mlp_hidden_dim()).dropout(options.dropout())));
  if (options.layer_scale()) {
    ls1 = register_module("ls1", LayerScale(dim, options.layer_scale_init()));
    ls2 = register_module("ls2", LayerScale(dim, options.layer_scale_init()));
  }
}

torch::Tensor ViTBlockImpl::forward(const torch::Tensor& x) {
  if (!ls1) {
    // The residual adds ride on the output products (fused where those run packed).
    auto h = attn->forward_residual(norm1(x), x).output;
    return mlp->forward_residual(norm2(h), h);
  }
  return residuals(x, attn(norm1(x)));
}

torch::Tensor ViTBlockImpl::forward(const torch::Tensor& x, torch::Tensor& weights,
                                    torch::Tensor* attention_input) {
  const auto normed = norm1(x);
  if (attention_input) *attention_input = normed;
  if (!ls1) {
    auto out = attn->forward_residual(normed, x, /*keep_weights=*/true);
    weights = out.weights;
    return mlp->forward_residual(norm2(out.output), out.output);
  }
  auto out = attn->forward_with_weights(normed);
  weights = out.weights;
  return residuals(x, out.output);
}

torch::Tensor ViTBlockImpl::residuals(const torch::Tensor& x, const torch::Tensor& attended) {
  auto h = x + (ls1 ? ls1(attended) : attended);
  auto m = mlp(norm2(h));
  return h + (ls2 ? ls2(m) : m);
}

}  // namespace attnkit::vision
