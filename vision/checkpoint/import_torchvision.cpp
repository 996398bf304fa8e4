// vision/checkpoint/import_torchvision.cpp: torchvision `vit_*` state dicts (saved as
// .safetensors). torchvision keeps a fused in_proj like timm's qkv, under other names.
#include <regex>

#include <torch/torch.h>

#include "vision/checkpoint/imagenet_labels.h"
#include "vision/checkpoint/import_util.h"
#include "vision/errors.h"

namespace attnkit::vision {
namespace {

/// torchvision name -> timm name, or "" for a name this importer does not know.
std::string attnkit_name(const std::string& name) {
  static const std::pair<std::regex, const char*> rules[] = {
      {std::regex(R"(^class_token$)"), "cls_token"},
      {std::regex(R"(^conv_proj\.(weight|bias)$)"), "patch_embed.proj.$1"},
      {std::regex(R"(^encoder\.pos_embedding$)"), "pos_embed"},
      {std::regex(R"(^encoder\.ln\.(weight|bias)$)"), "norm.$1"},
      {std::regex(R"(^heads\.head\.(weight|bias)$)"), "head.$1"},
      {std::regex(R"(^encoder\.layers\.encoder_layer_(\d+)\.ln_1\.(weight|bias)$)"),
       "blocks.$1.norm1.$2"},
      {std::regex(R"(^encoder\.layers\.encoder_layer_(\d+)\.ln_2\.(weight|bias)$)"),
       "blocks.$1.norm2.$2"},
      {std::regex(
           R"(^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_(weight|bias)$)"),
       "blocks.$1.attn.qkv.$2"},
      {std::regex(
           R"(^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\.(weight|bias)$)"),
       "blocks.$1.attn.proj.$2"},
      // mlp.0 / mlp.3 since torchvision 0.13; linear_1 / linear_2 before it.
      {std::regex(R"(^encoder\.layers\.encoder_layer_(\d+)\.mlp\.(0|linear_1)\.(weight|bias)$)"),
       "blocks.$1.mlp.fc1.$3"},
      {std::regex(R"(^encoder\.layers\.encoder_layer_(\d+)\.mlp\.(3|linear_2)\.(weight|bias)$)"),
       "blocks.$1.mlp.fc2.$3"},
  };
  for (const auto& [pattern, replacement] : rules) {
    if (std::regex_match(name, pattern)) return std::regex_replace(name, pattern, replacement);
  }
  return "";
}

}  // namespace

ImportedModel import_torchvision(const std::string& path, const ImportOptions& options) {
  const auto file = SafetensorsFile::open(path);
  ImportedModel out;
  ViTConfig& c = out.config;
  const auto proj = detail::float_tensor(file, "conv_proj.weight");  // (D, C, P, P)
  if (proj.dim() != 4 || proj.size(2) != proj.size(3)) {
    throw CheckpointError(path + ": conv_proj.weight must be (D, C, P, P), got " +
                          c10::str(proj.sizes()));
  }
  c.dim = proj.size(0);
  c.in_channels = proj.size(1);
  c.patch_size = proj.size(2);
  c.depth = 0;
  while (
      file.contains("encoder.layers.encoder_layer_" + std::to_string(c.depth) + ".ln_1.weight")) {
    ++c.depth;
  }
  if (c.depth == 0) throw CheckpointError(path + ": no encoder layers (encoder_layer_0)");
  const std::string mlp0 = file.contains("encoder.layers.encoder_layer_0.mlp.0.weight")
                               ? "encoder.layers.encoder_layer_0.mlp.0.weight"
                               : "encoder.layers.encoder_layer_0.mlp.linear_1.weight";
  c.mlp_hidden_dim = detail::checked_shape(file, mlp0, 2, "(hidden, dim)")[0];
  c.norm_eps = 1e-6;  // torchvision: partial(nn.LayerNorm, eps=1e-6)
  c.class_token = true;
  c.pooling = Pooling::kToken;
  c.num_classes = file.contains("heads.head.weight")
                      ? detail::checked_shape(file, "heads.head.weight", 2, "(classes, dim)")[0]
                      : 0;
  if (file.contains("heads.pre_logits.weight")) {
    throw CheckpointError(path +
                          ": heads with a representation layer (pre_logits) are not "
                          "supported");
  }
  c.num_heads = options.num_heads > 0 ? options.num_heads : detail::standard_num_heads(c.dim);
  if (c.num_heads == 0) {
    throw ImportNeedsOption(
        path + ": cannot tell the number of heads for width " + std::to_string(c.dim), "num_heads");
  }
  const int64_t pos_tokens =
      detail::checked_shape(file, "encoder.pos_embedding", 3, "(1, tokens, dim)")[1];
  const int64_t side = detail::square_side(pos_tokens - 1);
  if (side == 0) {
    throw CheckpointError(path + ": encoder.pos_embedding has " + std::to_string(pos_tokens) +
                          " tokens, not 1 + a square grid");
  }
  c.image_height = c.image_width = side * c.patch_size;

  std::vector<std::string> unknown;
  for (const auto& entry : file.entries()) {
    const std::string name = attnkit_name(entry.name);
    if (name.empty()) {
      unknown.push_back(entry.name);
      continue;
    }
    out.tensors.emplace_back(name, detail::float_tensor(file, entry.name));
  }
  if (!unknown.empty()) {
    throw CheckpointError(path + ": " + std::to_string(unknown.size()) +
                          " tensor(s) that are not part of a torchvision ViT, e.g. '" +
                          unknown.front() + "'");
  }

  // torchvision's weights: IMAGENET1K_V1 = resize 256, crop 224, bilinear; the SWAG weights
  // (384, 512, 518 inputs) resize straight to the input size, bicubic.
  PreprocessConfig& p = out.info.preprocess;
  p.height = c.image_height;
  p.width = c.image_width;
  if (c.image_height == 224) {
    p.crop_pct = 224.0 / 256.0;
    p.interpolation = Interpolation::kBilinear;
  } else {
    p.crop_pct = 1.0;
    p.interpolation = Interpolation::kBicubic;
  }
  if (c.num_classes == 1000) out.info.labels = imagenet1k_labels();
  out.info.source = "torchvision:" + path;
  detail::finish_import(out, path);
  return out;
}

}  // namespace attnkit::vision
