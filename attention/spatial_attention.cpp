// attention/spatial_attention.cpp: additive and dot-product scoring, soft and hard selection.
#include "attention/spatial_attention.h"
#include "attention/additive_score_kernel.h"
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
    TORCH_CHECK(
        mask.dim() == 2 && mask.size(0) == features.size(0) && mask.size(1) == features.size(1),
        "SpatialAttention: expected mask (", features.size(0), ", ", features.size(1), "), got ",
        mask.sizes());
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
  memory.values = kv_heads[1];                                                      // (B, H, L, hd)
  return memory;
}

AttentionOutput SpatialAttentionImpl::attend(const AttentionMemory& memory,
                                             const torch::Tensor& query) {
  const int64_t batch = memory.features.size(0);
  const int64_t group = memory.queries_per_item;
  TORCH_CHECK(group >= 1, "SpatialAttention: queries_per_item must be >= 1, got ", group);
  TORCH_CHECK(
      query.dim() == 2 && query.size(0) == batch * group && query.size(1) == options.query_dim(),
      "SpatialAttention: expected query (", batch * group, ", ", options.query_dim(), "), got ",
      query.sizes());
  const int64_t rows = batch * group;
  const int64_t cells = memory.features.size(1);
  torch::Tensor scores;  // (B * g, H, L)
  if (options.score() == AttentionScore::kAdditive) {
    auto projected = query_proj(query);  // (B * g, A)
    const int64_t width = projected.size(1);
    const auto grouped = projected.view({batch, group, width});
    const bool needs_grad =
        torch::GradMode::is_enabled() && (projected.requires_grad() || memory.keys.requires_grad());
    if (!needs_grad && !is_training()) {
      scores = additive_scores_by_item(memory.keys, grouped);
    } else {
      // (B, 1, L, A) + (B, g, 1, A) -> (B, g, L, A)
      auto hidden = torch::tanh(memory.keys.unsqueeze(1) + grouped.unsqueeze(2));
      scores = score(hidden).squeeze(-1);  // (B, g, L)
    }
    scores = scores.reshape({rows, 1, cells});
  } else {
    const int64_t heads = options.num_heads();
    const int64_t head_dim = options.feature_dim() / heads;
    auto q_heads = q(query).view({batch, group, heads, head_dim});
    if (options.qk_norm()) q_heads = layer_norm(q_norm, q_heads);
    q_heads = q_heads.permute({0, 2, 1, 3}) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
    // (B, H, g, hd) x (B, H, hd, L) -> (B, H, g, L) -> (B * g, H, L)
    scores = torch::matmul(q_heads, memory.keys.transpose(-2, -1))
                 .permute({0, 2, 1, 3})
                 .reshape({rows, heads, cells});
  }
  if (memory.mask.defined()) {
    auto mask = group == 1 ? memory.mask : memory.mask.repeat_interleave(group, 0);
    scores = scores.masked_fill(mask.logical_not().unsqueeze(1),
                                -std::numeric_limits<float>::infinity());
  }
  return select(std::move(scores), memory);
}

torch::Tensor SpatialAttentionImpl::additive_scores_by_item(const torch::Tensor& keys,
                                                            const torch::Tensor& queries) {
  const int64_t batch = queries.size(0), group = queries.size(1), width = queries.size(2);
  const int64_t cells = keys.size(1);
  const auto w = score->weight.to(torch::kFloat).contiguous();
  const float bias = score->bias.defined() ? score->bias.item<float>() : 0.0f;
  auto out = torch::empty({batch, group, cells}, queries.options().dtype(torch::kFloat));
  const auto keys_c = keys.to(torch::kFloat).contiguous();
  const auto queries_c = queries.to(torch::kFloat).contiguous();
  const float* key_data = keys_c.data_ptr<float>();
  const float* query_data = queries_c.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      additive_scores(key_data + item * cells * width, query_data + item * group * width,
                      w.data_ptr<float>(), bias, cells, group, width,
                      out_data + item * group * cells);
    }
  });
  return out;
}

AttentionOutput SpatialAttentionImpl::select(torch::Tensor scores, const AttentionMemory& memory) {
  const int64_t rows = scores.size(0);
  const int64_t heads = scores.size(1);
  const int64_t cells = scores.size(2);
  const int64_t batch = memory.features.size(0);
  const int64_t group = memory.queries_per_item;
  const bool additive = options.score() == AttentionScore::kAdditive;
  auto alpha = torch::softmax(scores, -1);  // (B * g, H, L)

  AttentionOutput out;
  if (options.mode() == AttentionMode::kSoft) {
    out.head_weights = alpha;
  } else {
    torch::Tensor chosen;  // (B * g, H) cell index per head
    if (is_training()) {
      // Multinoulli sample (SAT eq. 8-9); REINFORCE needs log p of what was drawn.
      chosen =
          torch::multinomial(alpha.detach().reshape({rows * heads, cells}), 1).view({rows, heads});
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
    // (B, g, L) x (B, L, D) -> (B, g, D) -> (B * g, D)
    out.context = torch::bmm(out.head_weights.reshape({batch, group, cells}), memory.values)
                      .reshape({rows, options.feature_dim()});
  } else {
    // (B, H, g, L) x (B, H, L, hd) -> (B, H, g, hd) -> (B, g, H, hd) -> (B * g, D)
    out.context =
        torch::matmul(out.head_weights.reshape({batch, group, heads, cells}).permute({0, 2, 1, 3}),
                      memory.values)
            .permute({0, 2, 1, 3})
            .reshape({rows, options.feature_dim()});
  }
  return out;
}

}  // namespace attnkit::attention
