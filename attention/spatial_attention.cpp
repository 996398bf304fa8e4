// attention/spatial_attention.cpp: additive and dot-product scoring, soft and hard selection.
#include "attention/spatial_attention.h"
#include "attention/layer_norm.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

namespace attnkit::attention {

SpatialAttentionImpl::SpatialAttentionImpl(SpatialAttentionOptions options_)
    : options(std::move(options_)) {
  reset();
}

void SpatialAttentionImpl::reset() {
  const int64_t dim = options.feature_dim();
  const int64_t query_dim = options.query_dim();
  TORCH_CHECK(dim > 0 && query_dim > 0,
              "SpatialAttention: feature_dim and query_dim must be positive, got ", dim, " and ",
              query_dim);
  if (options.score() == AttentionScore::kAdditive) {
    TORCH_CHECK(options.num_heads() == 1, "SpatialAttention: additive scoring has one head, got ",
                options.num_heads());
    const int64_t hidden = options.hidden_dim() > 0 ? options.hidden_dim() : dim;
    feature_proj = register_module("feature_proj", torch::nn::Linear(dim, hidden));
    query_proj = register_module("query_proj", torch::nn::Linear(query_dim, hidden));
    score = register_module("score", torch::nn::Linear(hidden, 1));
    return;
  }
  const int64_t heads = options.num_heads();
  TORCH_CHECK(heads > 0 && dim % heads == 0, "SpatialAttention: feature_dim (", dim,
              ") must be divisible by num_heads (", heads, ")");
  q = register_module(
      "q", torch::nn::Linear(torch::nn::LinearOptions(query_dim, dim).bias(options.qkv_bias())));
  kv = register_module(
      "kv", torch::nn::Linear(torch::nn::LinearOptions(dim, 2 * dim).bias(options.qkv_bias())));
  if (options.qk_norm()) {
    const auto norm = torch::nn::LayerNormOptions({dim / heads}).eps(options.norm_eps());
    q_norm = register_module("q_norm", torch::nn::LayerNorm(norm));
    k_norm = register_module("k_norm", torch::nn::LayerNorm(norm));
  }
}

AttentionOutput SpatialAttentionImpl::forward(const torch::Tensor& features,
                                              const torch::Tensor& query,
                                              const torch::Tensor& mask) {
  return attend(prepare(features, mask), query);
}

AttentionMemory SpatialAttentionImpl::prepare(const torch::Tensor& features,
                                              const torch::Tensor& mask) {
  TORCH_CHECK(features.dim() == 3 && features.size(2) == options.feature_dim(),
              "SpatialAttention: expected features (B, L, ", options.feature_dim(), "), got ",
              features.sizes());
  TORCH_CHECK(features.size(1) > 0, "SpatialAttention: features have no cells (L = 0)");
  if (mask.defined()) {
    TORCH_CHECK(mask.dim() == 2 && mask.size(0) == features.size(0) &&
                    mask.size(1) == features.size(1),
                "SpatialAttention: expected mask (", features.size(0), ", ", features.size(1),
                "), got ", mask.sizes());
    TORCH_CHECK(mask.scalar_type() == torch::kBool, "SpatialAttention: mask must be bool, got ",
                mask.scalar_type());
    TORCH_CHECK(mask.any(1).all().item<bool>(),
                "SpatialAttention: every row of the mask needs at least one real cell");
  }
  AttentionMemory memory;
  memory.features = features;
  memory.mask = mask;
  if (options.score() == AttentionScore::kAdditive) {
    memory.keys = feature_proj(features);  // (B, L, A)
    memory.values = features;
    return memory;
  }
  const int64_t batch = features.size(0);
  const int64_t cells = features.size(1);
  const int64_t heads = options.num_heads();
  const int64_t head_dim = options.feature_dim() / heads;
  auto kv_heads = kv(features).view({batch, cells, 2, heads, head_dim}).permute({2, 0, 3, 1, 4});
  memory.keys = options.qk_norm() ? layer_norm(k_norm, kv_heads[0]) : kv_heads[0];  // (B, H, L, hd)
  memory.values = kv_heads[1];                                          // (B, H, L, hd)
  return memory;
}

AttentionOutput SpatialAttentionImpl::attend(const AttentionMemory& memory,
                                             const torch::Tensor& query) {
  const int64_t batch = memory.features.size(0);
  TORCH_CHECK(query.dim() == 2 && query.size(0) == batch && query.size(1) == options.query_dim(),
              "SpatialAttention: expected query (", batch, ", ", options.query_dim(), "), got ",
              query.sizes());
  torch::Tensor scores;  // (B, H, L)
  if (options.score() == AttentionScore::kAdditive) {
    auto hidden = torch::tanh(memory.keys + query_proj(query).unsqueeze(1));  // (B, L, A)
    scores = score(hidden).squeeze(-1).unsqueeze(1);                           // (B, 1, L)
  } else {
    const int64_t heads = options.num_heads();
    const int64_t head_dim = options.feature_dim() / heads;
    auto q_heads = q(query).view({batch, heads, 1, head_dim});  // (B, H, 1, hd)
    if (options.qk_norm()) q_heads = layer_norm(q_norm, q_heads);
    q_heads = q_heads * (1.0 / std::sqrt(static_cast<double>(head_dim)));
    scores = torch::matmul(q_heads, memory.keys.transpose(-2, -1)).squeeze(2);  // (B, H, L)
  }
  if (memory.mask.defined()) {
    scores = scores.masked_fill(memory.mask.logical_not().unsqueeze(1),
                                -std::numeric_limits<float>::infinity());
  }
  return select(std::move(scores), memory);
}

AttentionOutput SpatialAttentionImpl::select(torch::Tensor scores, const AttentionMemory& memory) {
  const int64_t batch = scores.size(0);
  const int64_t heads = scores.size(1);
  const int64_t cells = scores.size(2);
  const bool additive = options.score() == AttentionScore::kAdditive;
  auto alpha = torch::softmax(scores, -1);  // (B, H, L)

  AttentionOutput out;
  if (options.mode() == AttentionMode::kSoft) {
    out.head_weights = alpha;
  } else {
    torch::Tensor chosen;  // (B, H) cell index per head
    if (is_training()) {
      // Multinoulli sample (SAT eq. 8-9); REINFORCE needs log p of what was drawn.
      chosen = torch::multinomial(alpha.detach().reshape({batch * heads, cells}), 1)
                   .view({batch, heads});
      out.log_prob =
          torch::log(alpha.gather(2, chosen.unsqueeze(2)).squeeze(2).clamp_min(1e-30)).sum(1);
    } else {
      chosen = alpha.argmax(2);
    }
    out.head_weights = torch::zeros_like(alpha).scatter_(2, chosen.unsqueeze(2), 1.0);
  }
  out.weights = heads == 1 ? out.head_weights.squeeze(1) : out.head_weights.mean(1);
  out.probabilities = heads == 1 ? alpha.squeeze(1) : alpha.mean(1);
  if (additive) {
    // (B, 1, L) x (B, L, D) -> (B, D)
    out.context = torch::bmm(out.head_weights, memory.values).squeeze(1);
  } else {
    // (B, H, 1, L) x (B, H, L, hd) -> (B, H, hd) -> (B, D)
    out.context = torch::matmul(out.head_weights.unsqueeze(2), memory.values)
                      .squeeze(2)
                      .reshape({batch, options.feature_dim()});
  }
  return out;
}

}  // namespace attnkit::attention
