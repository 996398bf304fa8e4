// vision/checkpoint/import_hf.cpp: Hugging Face transformers ViT and DeiT checkpoints. Their
// separate query/key/value projections are fused into attnkit's (timm's) single qkv.
#include <map>
#include <set>

#include <torch/torch.h>

#include "vision/checkpoint/imagenet_labels.h"
#include "vision/checkpoint/import_util.h"
#include "vision/errors.h"
#include "vision/json_error.h"

namespace attnkit::vision {
namespace {

using nlohmann::json;

/// PIL.Image.Resampling values as transformers stores them in `resample`.
Interpolation interpolation_from_pil_code(int code, const std::string& source) {
  switch (code) {
    case 0:
      return Interpolation::kNearest;
    case 1:
      return Interpolation::kLanczos;
    case 2:
      return Interpolation::kBilinear;
    case 3:
      return Interpolation::kBicubic;
    case 4:
      return Interpolation::kBox;
    case 5:
      return Interpolation::kHamming;
    default:
      throw CheckpointError(source + ": resample " + std::to_string(code) +
                            " is not a PIL resampling filter");
  }
}

/// {"height": h, "width": w} | {"shortest_edge": s} | s
void read_size(const json& size, int64_t* height, int64_t* width, int64_t* shortest_edge,
               const std::string& source) {
  if (size.is_number_integer()) {
    *height = *width = size.get<int64_t>();
  } else if (size.is_object() && size.contains("height") && size.contains("width")) {
    *height = size["height"].get<int64_t>();
    *width = size["width"].get<int64_t>();
  } else if (size.is_object() && size.contains("shortest_edge")) {
    *shortest_edge = size["shortest_edge"].get<int64_t>();
  } else {
    throw CheckpointError(source + ": unsupported size " + size.dump());
  }
}

/// transformers' image processor: resize (to height x width, or the short side), optional
/// centre crop, rescale 1/255, normalise.
PreprocessConfig preprocess_from_processor(const json& processor, const ViTConfig& model,
                                           const std::string& source) {
  PreprocessConfig p;
  p.height = model.image_height;
  p.width = model.image_width;
  p.crop_mode = CropMode::kSquash;
  p.crop_pct = 1.0;
  p.interpolation = Interpolation::kBilinear;  // ViTImageProcessor's default
  p.mean = {0.5, 0.5, 0.5};                    // IMAGENET_STANDARD_MEAN / STD
  p.std = {0.5, 0.5, 0.5};
  try {
    if (processor.contains("resample")) {
      p.interpolation = interpolation_from_pil_code(processor["resample"].get<int>(), source);
    }
    if (processor.value("do_normalize", true)) {
      if (processor.contains("image_mean")) {
        const auto m = processor["image_mean"].get<std::vector<double>>();
        if (m.size() == 3) p.mean = {m[0], m[1], m[2]};
      }
      if (processor.contains("image_std")) {
        const auto s = processor["image_std"].get<std::vector<double>>();
        if (s.size() == 3) p.std = {s[0], s[1], s[2]};
      }
    } else {
      p.mean = {0, 0, 0};
      p.std = {1, 1, 1};
    }
    if (processor.contains("rescale_factor") &&
        std::abs(processor["rescale_factor"].get<double>() - 1.0 / 255.0) > 1e-9) {
      throw CheckpointError(source + ": rescale_factor other than 1/255 is not supported");
    }
    int64_t resize_h = p.height, resize_w = p.width, shortest = 0;
    if (processor.value("do_resize", true) && processor.contains("size")) {
      read_size(processor["size"], &resize_h, &resize_w, &shortest, source);
    }
    int64_t crop_h = resize_h, crop_w = resize_w;
    const bool crop = processor.value("do_center_crop", false) && processor.contains("crop_size");
    if (crop) {
      int64_t unused = 0;
      read_size(processor["crop_size"], &crop_h, &crop_w, &unused, source);
    }
    if (shortest > 0) {
      // Short side to `shortest`, keep the aspect ratio, then crop: timm's centre mode.
      p.crop_mode = CropMode::kCenter;
      p.crop_pct = static_cast<double>(crop ? crop_h : shortest) / static_cast<double>(shortest);
      p.height = crop ? crop_h : shortest;
      p.width = crop ? crop_w : shortest;
    } else {
      p.crop_mode = CropMode::kSquash;
      p.height = crop ? crop_h : resize_h;
      p.width = crop ? crop_w : resize_w;
      p.crop_pct = crop ? static_cast<double>(crop_h) / static_cast<double>(resize_h) : 1.0;
      if (crop && crop_h * resize_w != crop_w * resize_h) {
        throw CheckpointError(source +
                              ": a crop with another aspect ratio than the resize is "
                              "not supported");
      }
    }
  } catch (const json::exception& e) {
    throw CheckpointError(source + ": a value of the wrong type (" + json_error_text(e) + ")");
  }
  return p;
}

}  // namespace

ImportedModel import_hf(const std::string& path, const ImportOptions& options) {
  const std::string config_path = detail::file_in_directory(path, "config.json");
  const std::string weights_path = detail::file_in_directory(path, "model.safetensors");
  const json config = detail::read_json_file(config_path);
  const auto file = SafetensorsFile::open(weights_path);

  const std::string model_type = config.value("model_type", std::string());
  if (model_type != "vit" && model_type != "deit") {
    throw CheckpointError(config_path + ": model_type '" + model_type +
                          "' is not supported (vit, deit)");
  }
  ImportedModel out;
  ViTConfig& c = out.config;
  try {
    c.dim = config.value("hidden_size", int64_t{768});
    c.depth = config.value("num_hidden_layers", int64_t{12});
    c.num_heads = options.num_heads > 0 ? options.num_heads
                                        : config.value("num_attention_heads", int64_t{12});
    c.mlp_hidden_dim = config.value("intermediate_size", int64_t{3072});
    c.norm_eps = config.value("layer_norm_eps", 1e-12);
    c.patch_size = config.value("patch_size", int64_t{16});
    c.in_channels = config.value("num_channels", int64_t{3});
    c.qkv_bias = config.value("qkv_bias", true);
    const json image_size = config.value("image_size", json(224));
    if (image_size.is_array() && image_size.size() == 2) {
      c.image_height = image_size[0].get<int64_t>();
      c.image_width = image_size[1].get<int64_t>();
    } else {
      c.image_height = c.image_width = image_size.get<int64_t>();
    }
    const std::string act = config.value("hidden_act", std::string("gelu"));
    if (act != "gelu") {
      throw CheckpointError(config_path + ": hidden_act '" + act +
                            "' is not supported (the exact erf 'gelu' is)");
    }
  } catch (const json::exception& e) {
    throw CheckpointError(config_path + ": a value of the wrong type (" + json_error_text(e) + ")");
  }

  // Weights are under "vit." / "deit." in the *ForImageClassification classes, bare in ViTModel.
  const std::string prefix =
      file.contains(model_type + ".embeddings.cls_token") ? model_type + "." : std::string();
  std::set<std::string> used;
  auto has = [&](const std::string& name) { return file.contains(prefix + name); };
  auto take = [&](const std::string& full_name) {
    used.insert(full_name);
    return detail::float_tensor(file, full_name);
  };
  auto get = [&](const std::string& name) { return take(prefix + name); };
  if (!has("embeddings.cls_token")) {
    throw CheckpointError(weights_path + ": no embeddings.cls_token: not a ViT/DeiT checkpoint");
  }
  c.class_token = true;
  c.distillation_token = has("embeddings.distillation_token");
  c.pooling = Pooling::kToken;
  c.patch_bias = has("embeddings.patch_embeddings.projection.bias");

  auto& t = out.tensors;
  std::map<std::string, std::string> renamed = {
      {"embeddings.cls_token", "cls_token"},
      {"embeddings.distillation_token", "dist_token"},
      {"embeddings.position_embeddings", "pos_embed"},
      {"embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight"},
      {"embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias"},
      {"layernorm.weight", "norm.weight"},
      {"layernorm.bias", "norm.bias"},
  };
  for (const auto& [hf, ours] : renamed) {
    if (has(hf)) t.emplace_back(ours, get(hf));
  }
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string layer = "encoder.layer." + std::to_string(i) + ".";
    const std::string block = "blocks." + std::to_string(i) + ".";
    const std::string attn = layer + "attention.attention.";
    for (const char* kind : {"weight", "bias"}) {
      const std::string k(kind);
      if (k == "bias" && !c.qkv_bias) continue;
      t.emplace_back(
          block + "attn.qkv." + k,
          torch::cat({get(attn + "query." + k), get(attn + "key." + k), get(attn + "value." + k)},
                     0));
      t.emplace_back(block + "attn.proj." + k, get(layer + "attention.output.dense." + k));
      t.emplace_back(block + "norm1." + k, get(layer + "layernorm_before." + k));
      t.emplace_back(block + "norm2." + k, get(layer + "layernorm_after." + k));
      t.emplace_back(block + "mlp.fc1." + k, get(layer + "intermediate.dense." + k));
      t.emplace_back(block + "mlp.fc2." + k, get(layer + "output.dense." + k));
    }
  }
  if (has("encoder.layer." + std::to_string(c.depth) + ".layernorm_before.weight")) {
    throw CheckpointError(weights_path + ": has more layers than num_hidden_layers = " +
                          std::to_string(c.depth) + " in config.json");
  }
  // Heads sit outside the prefix: classifier (ViT), cls_classifier + distillation_classifier
  // (DeiT).
  const std::string head_name = c.distillation_token ? "cls_classifier" : "classifier";
  if (file.contains(head_name + ".weight")) {
    c.num_classes = detail::checked_shape(file, head_name + ".weight", 2, "(classes, dim)")[0];
    for (const char* kind : {".weight", ".bias"}) {
      t.emplace_back(std::string("head") + kind, take(head_name + kind));
      if (c.distillation_token) {
        t.emplace_back(std::string("head_dist") + kind,
                       take("distillation_classifier" + std::string(kind)));
      }
    }
  } else {
    c.num_classes = 0;
  }

  // The pooler (ViTModel) and mask token (masked image modelling) have no part in classification;
  // anything else left over means a variant this importer does not understand.
  std::vector<std::string> leftover;
  for (const auto& entry : file.entries()) {
    const auto& n = entry.name;
    if (used.count(n) || n.find("pooler.") != std::string::npos ||
        n.find("embeddings.mask_token") != std::string::npos) {
      continue;
    }
    leftover.push_back(n);
  }
  if (!leftover.empty()) {
    throw CheckpointError(weights_path + ": " + std::to_string(leftover.size()) +
                          " tensor(s) this importer does not know, e.g. '" + leftover.front() +
                          "'");
  }

  std::string processor_path;
  json processor = json::object();
  try {
    processor_path = detail::file_in_directory(path, "preprocessor_config.json");
    processor = detail::read_json_file(processor_path);
  } catch (const CheckpointError&) {
    processor_path = path + "/preprocessor_config.json";  // absent: transformers' defaults
  }
  out.info.preprocess = preprocess_from_processor(processor, c, processor_path);

  if (config.contains("id2label") && config["id2label"].is_object() && c.num_classes > 0) {
    std::vector<std::string> labels(static_cast<size_t>(c.num_classes));
    for (const auto& [key, value] : config["id2label"].items()) {
      size_t index = 0;
      try {
        index = std::stoul(key);
      } catch (const std::exception&) {
        throw CheckpointError(config_path + ": id2label key '" + key + "' is not an index");
      }
      if (index >= labels.size() || !value.is_string()) {
        throw CheckpointError(config_path + ": id2label entry '" + key + "' does not fit " +
                              std::to_string(c.num_classes) + " classes");
      }
      labels[index] = value.get<std::string>();
    }
    // transformers writes LABEL_0, LABEL_1, ... when it knows no names.
    if (labels.size() == 1000 && labels[0] == "LABEL_0") labels = imagenet1k_labels();
    out.info.labels = labels;
  } else if (c.num_classes == 1000) {
    out.info.labels = imagenet1k_labels();
  }
  const std::string name = config.value("_name_or_path", std::string());
  out.info.source = "huggingface:" + (name.empty() ? path : name);
  detail::finish_import(out, weights_path);
  return out;
}

}  // namespace attnkit::vision
