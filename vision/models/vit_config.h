// vision/models/vit_config.h: every knob of a Vision Transformer, as timm names them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace attnkit::vision {

/// How the token sequence becomes one vector for the head.
enum class Pooling {
  kToken,  ///< the class token (ViT, DeiT; DeiT-distilled averages class and distillation heads)
  kAvg,    ///< mean of the patch tokens, then fc_norm (timm global_pool='avg')
  kMap,    ///< attention pooling with a learned latent query (timm global_pool='map', SigLIP)
};

/// A ViT architecture. Defaults are ViT-B/16 at 224 (timm vit_base_patch16_224).
struct ViTConfig {
  int64_t image_height = 224;  ///< the size the position embeddings were trained at
  int64_t image_width = 224;
  int64_t patch_size = 16;  ///< square patches: 8, 14, 16, 32, ...
  int64_t in_channels = 3;
  int64_t dim = 768;   ///< D: token width (Ti 192, S 384, B 768, L 1024, H 1280)
  int64_t depth = 12;  ///< number of blocks
  int64_t num_heads = 12;
  int64_t mlp_hidden_dim = 3072;  ///< MLP width (mlp_ratio x D)
  bool qkv_bias = true;
  bool qk_norm = false;
  double norm_eps = 1e-6;  ///< LayerNorm eps: 1e-6 timm/torchvision, 1e-12 Hugging Face
  bool class_token = true;
  int64_t register_tokens = 0;      ///< "Vision Transformers Need Registers" (Darcet et al. 2023)
  bool distillation_token = false;  ///< DeiT: a second token with its own head
  /// Position embeddings also cover the prefix (class, distillation, register) tokens; false is
  /// timm's no_embed_class=True (the prefix tokens get none).
  bool pos_embed_prefix = true;
  bool layer_scale = false;        ///< LayerScale (CaiT / DeiT III): per-channel gamma on residuals
  double layer_scale_init = 1e-5;  ///< gamma's initial value when training from scratch
  bool pre_norm = false;           ///< LayerNorm after the embeddings (CLIP's norm_pre)
  bool patch_bias = true;          ///< bias on the patch projection
  /// Convolutional stem (Xiao et al. 2021, "Early Convolutions Help Transformers See Better"):
  /// one 3x3 convolution + BatchNorm + ReLU per entry (its output channels), then the patch
  /// projection with kernel = stride = patch_size / (product of the stem strides). Empty: the
  /// plain patch convolution.
  std::vector<int64_t> stem_channels;
  /// Stride of each stem stage, 1 or 2; empty means 2 for every stage. Stride-1 stages add
  /// convolutional depth at full resolution without shrinking the token grid.
  std::vector<int64_t> stem_strides;
  /// The stem's total stride (1 without a stem).
  int64_t stem_stride() const;
  Pooling pooling = Pooling::kToken;
  /// Norm after pooling (timm fc_norm) instead of before it; timm's default for avg pooling.
  bool fc_norm = false;
  /// Map pooling: the attention pool also reads the prefix (class, register) tokens. timm's
  /// `pool_include_prefix`; false, timm's default since mid-2025, gives it the patches only.
  bool pool_include_prefix = false;
  int64_t num_classes = 1000;  ///< 0 = no head: forward returns the pooled features
  double dropout = 0.0;        ///< dropout on embeddings, MLPs and attention projections (training)

  /// Patch grid rows and columns at the configured image size.
  int64_t grid_height() const { return image_height / patch_size; }
  int64_t grid_width() const { return image_width / patch_size; }
  /// Tokens before the patch tokens: class, distillation, registers.
  int64_t num_prefix_tokens() const {
    return (class_token ? 1 : 0) + (distillation_token ? 1 : 0) + register_tokens;
  }
  /// Throws std::invalid_argument with what is wrong (dim not divisible by heads, ...).
  void validate() const;

  std::string to_json() const;
  /// Missing keys keep their defaults; throws std::invalid_argument on bad JSON or values.
  static ViTConfig from_json(const std::string& json);
  /// The same on parsed JSON (a captioner's config holds its encoder's).
  static ViTConfig from_json_value(const nlohmann::json& json);

  /// A standard architecture by timm name: "vit_{tiny,small,base,large,huge}_patch{P}_{SIZE}",
  /// e.g. "vit_small_patch16_224". Throws std::invalid_argument for other names.
  static ViTConfig from_name(const std::string& name);
};

/// The stride of stem stage `stage`: stem_strides[stage], or 2 when the list is empty.
int64_t stem_stage_stride(const std::vector<int64_t>& stem_strides, size_t stage);
/// The product of the first `stages` stem stages' strides (1 for no stem).
int64_t total_stem_stride(size_t stages, const std::vector<int64_t>& stem_strides);

std::string to_string(Pooling pooling);
Pooling pooling_from_string(const std::string& name);  ///< "token" | "avg" | "map"

}  // namespace attnkit::vision
