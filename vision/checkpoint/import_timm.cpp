// vision/checkpoint/import_timm.cpp: timm ViT checkpoints. attnkit uses timm's parameter names,
// so only the attention-pool head is renamed; the architecture is read off the tensors.
#include <filesystem>
#include <regex>

#include <torch/torch.h>

#include "vision/checkpoint/imagenet_labels.h"
#include "vision/checkpoint/import_util.h"
#include "vision/errors.h"
#include "vision/json_error.h"

namespace attnkit::vision {
namespace {

using nlohmann::json;

/// timm's AttentionPoolLatent keeps q, kv, q_norm, k_norm at its top level; attnkit's
/// AttentionPool holds them in its SpatialAttention.
std::string attnkit_name(const std::string& timm_name) {
  static const std::regex pool(R"(^attn_pool\.(q|kv|q_norm|k_norm)\.(.*)$)");
  return std::regex_replace(timm_name, pool, "attn_pool.attention.$1.$2");
}

/// Heads from a timm architecture name ("vit_base_patch16_224.augreg_in21k" -> 12).
int64_t heads_from_architecture(const std::string& architecture) {
  static const std::pair<const char*, int64_t> sizes[] = {
      {"_tiny_", 3},   {"_small_", 6}, {"_medium_", 8}, {"_base_", 12},
      {"_large_", 16}, {"_huge_", 16}, {"_giant_", 16}, {"_gigantic_", 16}};
  for (const auto& [needle, heads] : sizes) {
    if (architecture.find(needle) != std::string::npos) return heads;
  }
  return 0;
}

/// timm's data config defaults (timm/data/config.py, constants.py) when pretrained_cfg is silent.
PreprocessConfig preprocess_from_pretrained_cfg(const json& cfg, const std::string& source) {
  PreprocessConfig p;
  p.interpolation = Interpolation::kBilinear;
  try {
    if (cfg.contains("input_size")) {
      const auto size = cfg.at("input_size").get<std::vector<int64_t>>();
      if (size.size() != 3)
        throw CheckpointError(source + ": pretrained_cfg.input_size must be [C, H, W]");
      p.channels = size[0];
      p.height = size[1];
      p.width = size[2];
    }
    if (cfg.contains("interpolation") && cfg.at("interpolation").is_string()) {
      p.interpolation = interpolation_from_string(cfg.at("interpolation").get<std::string>());
    }
    if (cfg.contains("crop_pct") && cfg.at("crop_pct").is_number()) {
      p.crop_pct = cfg.at("crop_pct").get<double>();
    }
    if (cfg.contains("crop_mode") && cfg.at("crop_mode").is_string()) {
      const auto mode = cfg.at("crop_mode").get<std::string>();
      if (mode == "squash") {
        p.crop_mode = CropMode::kSquash;
      } else if (mode != "center") {
        throw CheckpointError(source + ": crop_mode '" + mode +
                              "' is not supported (center, squash)");
      }
    }
    if (cfg.contains("mean")) {
      const auto mean = cfg.at("mean").get<std::vector<double>>();
      if (mean.size() == 3) p.mean = {mean[0], mean[1], mean[2]};
    }
    if (cfg.contains("std")) {
      const auto std = cfg.at("std").get<std::vector<double>>();
      if (std.size() == 3) p.std = {std[0], std[1], std[2]};
    }
  } catch (const json::exception& e) {
    throw CheckpointError(source + ": pretrained_cfg has a value of the wrong type (" +
                          json_error_text(e) + ")");
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(source + ": " + e.what());
  }
  return p;
}

}  // namespace

ImportedModel import_timm(const std::string& path, const ImportOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  const std::string weights_path =
      is_dir ? detail::file_in_directory(path, "model.safetensors") : path;
  json config = json::object();
  std::string config_path;
  if (is_dir) {
    config_path = detail::file_in_directory(path, "config.json");
    config = detail::read_json_file(config_path);
  }
  const auto file = SafetensorsFile::open(weights_path);
  const std::string architecture = config.value("architecture", std::string());
  json pretrained = config.contains("pretrained_cfg") && config["pretrained_cfg"].is_object()
                        ? config["pretrained_cfg"]
                        : json::object();
  json model_args = config.contains("model_args") && config["model_args"].is_object()
                        ? config["model_args"]
                        : json::object();

  ImportedModel out;
  ViTConfig& c = out.config;
  const auto proj = detail::float_tensor(file, "patch_embed.proj.weight");  // (D, C, P, P)
  if (proj.dim() != 4 || proj.size(2) != proj.size(3)) {
    throw CheckpointError(weights_path +
                          ": patch_embed.proj.weight must be (D, C, P, P) with "
                          "square patches, got " +
                          c10::str(proj.sizes()));
  }
  c.dim = proj.size(0);
  c.in_channels = proj.size(1);
  c.patch_size = proj.size(2);
  c.patch_bias = file.contains("patch_embed.proj.bias");
  c.depth = 0;
  while (file.contains("blocks." + std::to_string(c.depth) + ".norm1.weight")) ++c.depth;
  if (c.depth == 0) throw CheckpointError(weights_path + ": no transformer blocks (blocks.0.*)");
  c.mlp_hidden_dim = detail::checked_shape(file, "blocks.0.mlp.fc1.weight", 2, "(hidden, dim)")[0];
  c.qkv_bias = file.contains("blocks.0.attn.qkv.bias");
  c.qk_norm = file.contains("blocks.0.attn.q_norm.weight");
  c.layer_scale = file.contains("blocks.0.ls1.gamma");
  c.pre_norm = file.contains("norm_pre.weight");
  c.fc_norm = file.contains("fc_norm.weight");
  c.class_token = file.contains("cls_token");
  c.distillation_token = file.contains("dist_token");
  c.register_tokens = file.contains("reg_token")
                          ? detail::checked_shape(file, "reg_token", 3, "(1, registers, dim)")[1]
                          : 0;
  c.norm_eps = 1e-6;  // timm's ViTs use LayerNorm(eps=1e-6)
  c.num_classes = file.contains("head.weight")
                      ? detail::checked_shape(file, "head.weight", 2, "(classes, dim)")[0]
                      : 0;

  std::string pool = model_args.value("global_pool", config.value("global_pool", std::string()));
  if (file.contains("attn_pool.latent")) {
    c.pooling = Pooling::kMap;
    c.pool_include_prefix =
        model_args.value("pool_include_prefix", config.value("pool_include_prefix", false));
    if (detail::checked_shape(file, "attn_pool.latent", 3, "(1, queries, dim)")[1] != 1) {
      throw CheckpointError(weights_path +
                            ": attention pooling with more than one latent query "
                            "is not supported");
    }
  } else if (pool == "avg" || (!c.class_token && pool.empty())) {
    c.pooling = Pooling::kAvg;
  } else if (pool == "token" || pool.empty()) {
    c.pooling = Pooling::kToken;
  } else {
    throw CheckpointError((config_path.empty() ? weights_path : config_path) + ": global_pool '" +
                          pool + "' is not supported (token, avg, map)");
  }

  c.num_heads = options.num_heads;
  if (c.num_heads == 0 && model_args.contains("num_heads")) {
    c.num_heads = model_args["num_heads"].get<int64_t>();
  }
  if (c.num_heads == 0) c.num_heads = heads_from_architecture(architecture);
  if (c.num_heads == 0) c.num_heads = detail::standard_num_heads(c.dim);
  if (c.num_heads == 0) {
    throw ImportNeedsOption(
        weights_path + ": cannot tell the number of heads for width " + std::to_string(c.dim),
        "num_heads");
  }

  // Image size: from pretrained_cfg, else the square grid the position embeddings hold.
  out.info.preprocess = preprocess_from_pretrained_cfg(pretrained, config_path);
  const int64_t pos_tokens = detail::checked_shape(file, "pos_embed", 3, "(1, tokens, dim)")[1];
  if (pretrained.contains("input_size")) {
    c.image_height = out.info.preprocess.height;
    c.image_width = out.info.preprocess.width;
  } else {
    const int64_t side = detail::square_side(pos_tokens - c.num_prefix_tokens()) > 0
                             ? detail::square_side(pos_tokens - c.num_prefix_tokens())
                             : detail::square_side(pos_tokens);
    if (side == 0) {
      throw CheckpointError(weights_path + ": cannot infer the image size from pos_embed (" +
                            std::to_string(pos_tokens) + " tokens); use a config.json");
    }
    c.image_height = c.image_width = side * c.patch_size;
    out.info.preprocess.height = out.info.preprocess.width = side * c.patch_size;
  }
  const int64_t grid = c.grid_height() * c.grid_width();
  if (pos_tokens == grid + c.num_prefix_tokens()) {
    c.pos_embed_prefix = true;
  } else if (pos_tokens == grid) {
    c.pos_embed_prefix = false;  // timm no_embed_class=True
  } else {
    throw CheckpointError(weights_path + ": pos_embed has " + std::to_string(pos_tokens) +
                          " tokens, which fits neither " + std::to_string(grid) + " nor " +
                          std::to_string(grid + c.num_prefix_tokens()) + " for a " +
                          std::to_string(c.grid_height()) + "x" + std::to_string(c.grid_width()) +
                          " grid");
  }

  for (const auto& entry : file.entries()) {
    out.tensors.emplace_back(attnkit_name(entry.name), detail::float_tensor(file, entry.name));
  }

  if (config.contains("label_names") && config["label_names"].is_array()) {
    out.info.labels = config["label_names"].get<std::vector<std::string>>();
  } else if (c.num_classes == 1000) {
    out.info.labels = imagenet1k_labels();
  }
  out.info.source = "timm" + (architecture.empty() ? std::string() : ":" + architecture) +
                    (pretrained.contains("tag") && pretrained["tag"].is_string()
                         ? "." + pretrained["tag"].get<std::string>()
                         : std::string());
  detail::finish_import(out, weights_path);
  return out;
}

}  // namespace attnkit::vision
