// vision/checkpoint/import.h: public ViT checkpoints (timm, Hugging Face, torchvision) turned into
// attnkit's config + timm-named tensors + metadata.
#pragma once

#include <string>

#include "vision/checkpoint/model_file.h"

namespace attnkit::vision {

/// Where a checkpoint comes from.
enum class CheckpointFormat { kTimm, kHuggingFace, kTorchvision };

std::string to_string(CheckpointFormat format);
/// "timm" | "hf" | "torchvision"; throws std::invalid_argument.
CheckpointFormat checkpoint_format_from_string(const std::string& name);

/// Choices the checkpoint cannot tell.
struct ImportOptions {
  /// Heads per block (0 = from the timm architecture name, HF config, or the standard width
  /// table 192:3, 384:6, 768:12, 1024:16, 1280:16).
  int64_t num_heads = 0;
};

/// A checkpoint ready to be loaded into a VisionTransformer and saved as an attnkit model.
struct ImportedModel {
  ViTConfig config;
  NamedTensors tensors;  ///< attnkit (timm) names, float32
  ModelInfo info;        ///< arch "vit", config JSON, labels, preprocessing, source
};

/// Looks at `path` (a directory or a .safetensors file) and says which format it is: a
/// directory with config.json holding "architecture" is timm, with "model_type" is Hugging Face;
/// a .safetensors file with `conv_proj.weight` is torchvision, with `patch_embed.proj.weight`
/// timm. Throws CheckpointError when it cannot tell.
CheckpointFormat detect_checkpoint_format(const std::string& path);

/// timm: a Hugging Face Hub timm repository directory (model.safetensors + config.json with
/// "architecture" and "pretrained_cfg"), or a bare timm .safetensors file (square image size
/// inferred from the position embeddings, timm's default preprocessing). The architecture is
/// read off the tensors (width, depth, patch, tokens, LayerScale, qk-norm, pooling head).
ImportedModel import_timm(const std::string& path, const ImportOptions& options = {});

/// Hugging Face ViTForImageClassification / ViTModel / DeiTForImageClassificationWithTeacher:
/// a directory with model.safetensors, config.json (id2label, layer_norm_eps, ...) and
/// preprocessor_config.json. q, k, v are fused into one qkv projection.
ImportedModel import_hf(const std::string& path, const ImportOptions& options = {});

/// A torchvision `vit_*` state dict saved as .safetensors. Preprocessing follows torchvision's
/// weights: 224 inputs resize 256 + crop 224 bilinear (IMAGENET1K_V1); larger inputs (SWAG)
/// resize to the input size bicubic without crop.
ImportedModel import_torchvision(const std::string& path, const ImportOptions& options = {});

/// Dispatches on the format.
ImportedModel import_checkpoint(const std::string& path, CheckpointFormat format,
                                const ImportOptions& options = {});

}  // namespace attnkit::vision
