// vision/models/vit.cpp: the Vision Transformer forward pass (timm's VisionTransformer order of
// operations: patch embed, prefix tokens, position embeddings, blocks, norm, pool, head).
#include "vision/models/vit.h"

#include <torch/torch.h>

namespace attnkit::vision {
namespace {

/// Truncated normal in [-2 std, 2 std] like timm's trunc_normal_(std=0.02) (a = -2, b = 2 are
/// absolute there, which is ~100 std: effectively a plain normal; we clamp at 2 std).
void truncated_normal_(torch::Tensor t, double std) {
  torch::NoGradGuard no_grad;
  t.normal_(0.0, std).clamp_(-2.0 * std, 2.0 * std);
}

}  // namespace

torch::Tensor resample_position_embeddings(const torch::Tensor& pos, int64_t prefix,
                                           int64_t grid_height, int64_t grid_width,
                                           int64_t new_grid_height, int64_t new_grid_width) {
  TORCH_CHECK(
      pos.dim() == 3 && pos.size(0) == 1 && pos.size(1) == prefix + grid_height * grid_width,
      "resample_position_embeddings: expected (1, ", prefix + grid_height * grid_width, ", D) for ",
      prefix, " prefix tokens and a ", grid_height, "x", grid_width, " grid, got ", pos.sizes());
  if (grid_height == new_grid_height && grid_width == new_grid_width) return pos;
  const int64_t dim = pos.size(2);
  auto prefix_part = pos.narrow(1, 0, prefix);
  auto grid = pos.narrow(1, prefix, grid_height * grid_width)
                  .reshape({1, grid_height, grid_width, dim})
                  .permute({0, 3, 1, 2});  // (1, D, gh, gw)
  // Interpolate in float32 whatever the storage type, as timm does.
  auto resized = torch::nn::functional::interpolate(
      grid.to(torch::kFloat), torch::nn::functional::InterpolateFuncOptions()
                                  .size(std::vector<int64_t>{new_grid_height, new_grid_width})
                                  .mode(torch::kBicubic)
                                  .align_corners(false)
                                  .antialias(true));
  resized = resized.to(pos.scalar_type())
                .permute({0, 2, 3, 1})
                .reshape({1, new_grid_height * new_grid_width, dim});
  return torch::cat({prefix_part, resized}, 1);
}

VisionTransformerImpl::VisionTransformerImpl(ViTConfig config) : config_(std::move(config)) {
  reset();
}

void VisionTransformerImpl::reset() {
  const ViTConfig& c = config_;
  c.validate();
  const int64_t dim = c.dim;
  const auto norm_options = torch::nn::LayerNormOptions({dim}).eps(c.norm_eps);

  patch_embed =
      register_module("patch_embed", PatchEmbed(PatchEmbedOptions(c.in_channels, dim, c.patch_size)
                                                    .bias(c.patch_bias)
                                                    .stem_channels(c.stem_channels)
                                                    .stem_strides(c.stem_strides)));
  if (c.class_token) cls_token = register_parameter("cls_token", torch::zeros({1, 1, dim}));
  if (c.distillation_token) {
    dist_token = register_parameter("dist_token", torch::zeros({1, 1, dim}));
  }
  if (c.register_tokens > 0) {
    reg_token = register_parameter("reg_token", torch::zeros({1, c.register_tokens, dim}));
  }
  const int64_t pos_tokens =
      c.grid_height() * c.grid_width() + (c.pos_embed_prefix ? c.num_prefix_tokens() : 0);
  pos_embed = register_parameter("pos_embed", torch::zeros({1, pos_tokens, dim}));
  if (c.pre_norm) norm_pre = register_module("norm_pre", torch::nn::LayerNorm(norm_options));

  blocks = register_module("blocks", torch::nn::ModuleList());
  block_refs_.clear();
  for (int64_t i = 0; i < c.depth; ++i) {
    ViTBlock block(ViTBlockOptions(dim, c.num_heads, c.mlp_hidden_dim)
                       .qkv_bias(c.qkv_bias)
                       .qk_norm(c.qk_norm)
                       .norm_eps(c.norm_eps)
                       .layer_scale(c.layer_scale)
                       .layer_scale_init(c.layer_scale_init)
                       .dropout(c.dropout));
    blocks->push_back(block);
    block_refs_.push_back(block);
  }
  // timm: with fc_norm the final norm moves after pooling and `norm` is an identity.
  if (c.fc_norm) {
    fc_norm = register_module("fc_norm", torch::nn::LayerNorm(norm_options));
  } else {
    norm = register_module("norm", torch::nn::LayerNorm(norm_options));
  }
  if (c.pooling == Pooling::kMap) {
    attn_pool = register_module(
        "attn_pool", attention::AttentionPool(attention::AttentionPoolOptions(dim, c.num_heads)
                                                  .mlp_hidden_dim(c.mlp_hidden_dim)
                                                  .qkv_bias(c.qkv_bias)
                                                  .qk_norm(c.qk_norm)
                                                  .norm_eps(c.norm_eps)));
  }
  if (c.num_classes > 0) {
    head = register_module("head", torch::nn::Linear(dim, c.num_classes));
    if (c.distillation_token) {
      head_dist = register_module("head_dist", torch::nn::Linear(dim, c.num_classes));
    }
  }
  initialize_weights();
}

void VisionTransformerImpl::initialize_weights() {
  torch::NoGradGuard no_grad;
  truncated_normal_(pos_embed, 0.02);
  if (cls_token.defined()) cls_token.normal_(0.0, 1e-6);
  if (dist_token.defined()) truncated_normal_(dist_token, 0.02);
  if (reg_token.defined()) reg_token.normal_(0.0, 1e-6);
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      truncated_normal_(linear->weight, 0.02);
      if (linear->bias.defined()) linear->bias.zero_();
    }
  }
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& images) {
  return forward_head(forward_features(images), nullptr);
}

ViTOutput VisionTransformerImpl::forward_all(const torch::Tensor& images, bool keep_attention,
                                             bool keep_attention_inputs) {
  ViTOutput out;
  out.tokens = forward_features(images, &out.grid_height, &out.grid_width,
                                keep_attention || keep_attention_inputs ? &out.attentions : nullptr,
                                keep_attention_inputs ? &out.attention_inputs : nullptr);
  out.logits = forward_head(out.tokens, &out.pool_weights);
  return out;
}

torch::Tensor VisionTransformerImpl::forward_features(
    const torch::Tensor& images, int64_t* grid_height, int64_t* grid_width,
    std::vector<torch::Tensor>* attentions, std::vector<torch::Tensor>* attention_inputs) {
  const ViTConfig& c = config_;
  auto x = patch_embed(images);  // (B, L, D)
  const int64_t batch = x.size(0);
  const int64_t gh = images.size(2) / c.patch_size;
  const int64_t gw = images.size(3) / c.patch_size;
  if (grid_height) *grid_height = gh;
  if (grid_width) *grid_width = gw;

  const int64_t stored_prefix = c.pos_embed_prefix ? c.num_prefix_tokens() : 0;
  auto pos = resample_position_embeddings(pos_embed, stored_prefix, c.grid_height(), c.grid_width(),
                                          gh, gw);
  std::vector<torch::Tensor> prefix;
  if (c.class_token) prefix.push_back(cls_token.expand({batch, -1, -1}));
  if (c.distillation_token) prefix.push_back(dist_token.expand({batch, -1, -1}));
  if (c.register_tokens > 0) prefix.push_back(reg_token.expand({batch, -1, -1}));

  // timm adds position embeddings after concatenating the prefix, unless no_embed_class.
  if (c.pos_embed_prefix) {
    prefix.push_back(x);
    x = torch::cat(prefix, 1) + pos;
  } else {
    x = x + pos;
    if (!prefix.empty()) {
      prefix.push_back(x);
      x = torch::cat(prefix, 1);
    }
  }
  if (c.dropout > 0.0) x = torch::dropout(x, c.dropout, is_training());
  if (norm_pre) x = norm_pre(x);
  for (auto& block : block_refs_) {
    if (attentions) {
      torch::Tensor weights, input;
      x = block->forward(x, weights, attention_inputs ? &input : nullptr);
      attentions->push_back(weights);
      if (attention_inputs) attention_inputs->push_back(input);
    } else {
      x = block->forward(x);
    }
  }
  return norm ? norm(x) : x;
}

torch::Tensor VisionTransformerImpl::forward_head(const torch::Tensor& tokens,
                                                  torch::Tensor* pool_weights) {
  const ViTConfig& c = config_;
  torch::Tensor pooled;
  switch (c.pooling) {
    case Pooling::kMap: {
      const int64_t skip = c.pool_include_prefix ? 0 : c.num_prefix_tokens();
      auto out = attn_pool->pool(tokens.narrow(1, skip, tokens.size(1) - skip));
      pooled = out.context;
      if (pool_weights) *pool_weights = out.weights;
      break;
    }
    case Pooling::kAvg:
      pooled =
          tokens.narrow(1, c.num_prefix_tokens(), tokens.size(1) - c.num_prefix_tokens()).mean(1);
      break;
    case Pooling::kToken:
      pooled = tokens.select(1, 0);
      break;
  }
  if (fc_norm) pooled = fc_norm(pooled);
  if (!head) return pooled;
  if (head_dist) {
    // DeiT at inference: the mean of the class-token and distillation-token heads.
    return (head(pooled) + head_dist(tokens.select(1, 1))) / 2;
  }
  return head(pooled);
}

}  // namespace attnkit::vision
