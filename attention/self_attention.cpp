// attention/self_attention.cpp: multi-head self-attention (matmul + softmax; LibTorch 1.13 has
// no fused scaled_dot_product_attention).
#include "attention/self_attention.h"
#include "attention/layer_norm.h"
#include "attention/packed_attention.h"

#include <cmath>

#include <torch/torch.h>

namespace attnkit::attention {

SelfAttentionImpl::SelfAttentionImpl(SelfAttentionOptions options_) : options(std::move(options_)) {
  reset();
}

void SelfAttentionImpl::reset() {
  const int64_t dim = options.dim();
  const int64_t heads = options.num_heads();
  TORCH_CHECK(dim > 0 && heads > 0, "SelfAttention: dim and num_heads must be positive, got ", dim,
              " and ", heads);
  TORCH_CHECK(dim % heads == 0, "SelfAttention: dim (", dim, ") must be divisible by num_heads (",
              heads, ")");
  qkv = register_module("qkv",
                        Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(options.qkv_bias())));
  proj = register_module("proj", Linear(dim, dim));
  if (options.qk_norm()) {
    const auto norm = torch::nn::LayerNormOptions({dim / heads}).eps(options.norm_eps());
    q_norm = register_module("q_norm", torch::nn::LayerNorm(norm));
    k_norm = register_module("k_norm", torch::nn::LayerNorm(norm));
  }
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x) {
  return attend(x, /*keep_weights=*/false, {}).output;
}

SelfAttentionOutput SelfAttentionImpl::forward_with_weights(const torch::Tensor& x) {
  return attend(x, /*keep_weights=*/true, {});
}

SelfAttentionOutput SelfAttentionImpl::forward_residual(const torch::Tensor& x,
                                                        const torch::Tensor& residual,
                                                        bool keep_weights) {
  return attend(x, keep_weights, residual);
}

SelfAttentionOutput SelfAttentionImpl::attend(const torch::Tensor& x, bool keep_weights,
                                              const torch::Tensor& residual) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options.dim(), "SelfAttention: expected (B, N, ",
              options.dim(), ") input, got ", x.sizes());
  const int64_t batch = x.size(0);
  const int64_t tokens = x.size(1);
  const int64_t heads = options.num_heads();
  const int64_t head_dim = options.dim() / heads;

  // In a bf16 pass the two attention products run in bf16 as well (3-4x faster than fp32 on
  // AMX); the scores' softmax and the weights it returns stay fp32.
  const bool bf16 = qkv->runs_bf16(x) && !options.qk_norm();
  auto qkv_out = bf16 ? qkv->forward_native(x) : qkv(x);  // (B, N, 3D)
  SelfAttentionOutput core;
  const bool dropout = is_training() && options.attention_dropout() > 0.0;
  // int8 passes too: their attention products are fp32, and the packed ones are the fast fp32.
  if ((qkv->runs_packed(x) || qkv->runs_int8(x)) && !options.qk_norm() && !dropout &&
      packed_attention_available()) {
    auto packed = packed_attention(qkv_out, heads, 1.0 / std::sqrt(static_cast<double>(head_dim)),
                                   keep_weights);
    core = {packed.output, packed.weights};
  } else {
    core = attend_core(qkv_out, batch, tokens);
  }
  torch::Tensor out;
  if (residual.defined() && !(is_training() && options.projection_dropout() > 0.0)) {
    out = proj->forward_add(core.output, residual);
  } else {
    out = proj(core.output);
    if (options.projection_dropout() > 0.0) {
      out = torch::dropout(out, options.projection_dropout(), is_training());
    }
    if (residual.defined()) out = residual + out;
  }
  return {out, keep_weights ? core.weights : torch::Tensor()};
}

SelfAttentionOutput SelfAttentionImpl::attend_core(const torch::Tensor& qkv_out, int64_t batch,
                                                   int64_t tokens) {
  const int64_t heads = options.num_heads();
  const int64_t head_dim = options.dim() / heads;
  const bool bf16 = qkv_out.scalar_type() == torch::kBFloat16;
  auto qkv_heads = qkv_out.view({batch, tokens, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  auto q = qkv_heads[0];  // (B, H, N, hd)
  auto k = qkv_heads[1];
  auto v = qkv_heads[2];
  if (options.qk_norm()) {
    q = layer_norm(q_norm, q);
    k = layer_norm(k_norm, k);
  }
  // Scaling q before the product costs N*hd multiplies instead of N*N.
  q = q * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  auto scores = torch::matmul(q, k.transpose(-2, -1));       // (B, H, N, N)
  auto weights = torch::softmax(scores, -1, torch::kFloat);  // fp32 in either case
  auto attended = options.attention_dropout() > 0.0
                      ? torch::dropout(weights, options.attention_dropout(), is_training())
                      : weights;
  auto out = torch::matmul(bf16 ? attended.to(torch::kBFloat16) : attended, v)  // (B, H, N, hd)
                 .transpose(1, 2)                                               // (B, N, H, hd)
                 .reshape({batch, tokens, options.dim()});
  return {out, weights};
}

}  // namespace attnkit::attention
