// vision/models/vit.h: the Vision Transformer (ViT, DeiT, registers, LayerScale, map head) whose
// parameter names are timm's, so timm checkpoints load key for key.
#pragma once

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "attention/attention_pool.h"
#include "vision/models/patch_embed.h"
#include "vision/models/vit_block.h"
#include "vision/models/vit_config.h"

namespace attnkit::vision {

/// Everything one forward pass can report.
struct ViTOutput {
  torch::Tensor logits;  ///< (B, num_classes), or the pooled features (B, D) without a head
  torch::Tensor tokens;  ///< (B, N, D) after the final norm; N = prefix + gh * gw
  /// One (B, H, N, N) tensor per block, in the autograd graph (empty unless asked for).
  std::vector<torch::Tensor> attentions;
  /// One (B, N, D) tensor per block: the normalised tokens its attention reads (timm's
  /// blocks.<i>.norm1 output), in the autograd graph (empty unless asked for).
  std::vector<torch::Tensor> attention_inputs;
  /// (B, N') attention-pool weights (map pooling only): N' = N with pool_include_prefix, else
  /// the gh * gw patches only.
  torch::Tensor pool_weights;
  int64_t grid_height = 0;  ///< patch rows of this input
  int64_t grid_width = 0;   ///< patch columns of this input
};

/// Resamples position embeddings to another patch grid as timm's resample_abs_pos_embed does:
/// the prefix rows are kept, the grid part is resized with bicubic interpolation
/// (align_corners = false, antialias on downsampling).
/// pos (1, prefix + gh*gw, D) -> (1, prefix + new_gh*new_gw, D).
torch::Tensor resample_position_embeddings(const torch::Tensor& pos, int64_t prefix,
                                           int64_t grid_height, int64_t grid_width,
                                           int64_t new_grid_height, int64_t new_grid_width);

/// A Vision Transformer. Any input whose sides are multiples of the patch size works, square or
/// not: the position embeddings are resampled to the input's grid on the fly.
/// Parameters (timm names): patch_embed.proj, cls_token, dist_token, reg_token, pos_embed,
/// norm_pre, blocks.<i>.*, norm, fc_norm, attn_pool.*, head, head_dist.
class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(ViTConfig config);
  void reset();

  /// images (B, C, H, W) -> logits (B, num_classes).
  torch::Tensor forward(const torch::Tensor& images);
  /// The full pass; with `keep_attention`, every block's attention weights too, and with
  /// `keep_attention_inputs` the tokens each block's attention reads.
  ViTOutput forward_all(const torch::Tensor& images, bool keep_attention,
                        bool keep_attention_inputs = false);
  /// The token sequence (B, N, D) after the final norm, and the grid it came from.
  torch::Tensor forward_features(const torch::Tensor& images, int64_t* grid_height = nullptr,
                                 int64_t* grid_width = nullptr,
                                 std::vector<torch::Tensor>* attentions = nullptr,
                                 std::vector<torch::Tensor>* attention_inputs = nullptr);

  const ViTConfig& config() const { return config_; }

  PatchEmbed patch_embed{nullptr};
  torch::Tensor cls_token;   ///< (1, 1, D)
  torch::Tensor dist_token;  ///< (1, 1, D)
  torch::Tensor reg_token;   ///< (1, R, D)
  torch::Tensor pos_embed;   ///< (1, [prefix +] gh*gw, D)
  torch::nn::LayerNorm norm_pre{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::LayerNorm fc_norm{nullptr};
  attention::AttentionPool attn_pool{nullptr};
  torch::nn::Linear head{nullptr};
  torch::nn::Linear head_dist{nullptr};

 private:
  /// The head on the final tokens: pool, fc_norm, linear; sets pool_weights for map pooling.
  torch::Tensor forward_head(const torch::Tensor& tokens, torch::Tensor* pool_weights);
  /// timm-style initialisation for training from scratch (truncated normal 0.02, zero biases).
  void initialize_weights();

  ViTConfig config_;
  std::vector<ViTBlock> block_refs_;
};
TORCH_MODULE(VisionTransformer);

}  // namespace attnkit::vision
