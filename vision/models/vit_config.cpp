// vision/models/vit_config.cpp: ViTConfig validation, JSON and the standard timm variants.
#include "vision/models/vit_config.h"
#include "vision/json_error.h"

#include <regex>
#include <stdexcept>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "vision/json_number.h"

namespace attnkit::vision {

std::string to_string(Pooling pooling) {
  switch (pooling) {
    case Pooling::kToken:
      return "token";
    case Pooling::kAvg:
      return "avg";
    case Pooling::kMap:
      return "map";
  }
  return "token";
}

Pooling pooling_from_string(const std::string& name) {
  if (name == "token") return Pooling::kToken;
  if (name == "avg") return Pooling::kAvg;
  if (name == "map") return Pooling::kMap;
  throw std::invalid_argument("unknown pooling '" + name + "' (expected token, avg or map)");
}

int64_t stem_stage_stride(const std::vector<int64_t>& stem_strides, size_t stage) {
  return stem_strides.empty() ? 2 : stem_strides.at(stage);
}

int64_t total_stem_stride(size_t stages, const std::vector<int64_t>& stem_strides) {
  int64_t stride = 1;
  for (size_t i = 0; i < stages; ++i) stride *= stem_stage_stride(stem_strides, i);
  return stride;
}

int64_t ViTConfig::stem_stride() const {
  return total_stem_stride(stem_channels.size(), stem_strides);
}

void ViTConfig::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("ViT config: " + what); };
  if (patch_size <= 0) fail("patch_size must be positive, got " + std::to_string(patch_size));
  if (image_height < patch_size || image_width < patch_size) {
    fail("image size " + std::to_string(image_height) + "x" + std::to_string(image_width) +
         " is smaller than one patch of " + std::to_string(patch_size));
  }
  if (image_height % patch_size != 0 || image_width % patch_size != 0) {
    fail("image size " + std::to_string(image_height) + "x" + std::to_string(image_width) +
         " is not a multiple of the patch size " + std::to_string(patch_size));
  }
  if (in_channels <= 0) fail("in_channels must be positive");
  if (!stem_strides.empty() && stem_strides.size() != stem_channels.size()) {
    fail("stem_strides has " + std::to_string(stem_strides.size()) + " entries but stem_channels " +
         std::to_string(stem_channels.size()));
  }
  for (int64_t stride : stem_strides) {
    if (stride != 1 && stride != 2) {
      fail("stem strides must be 1 or 2, got " + std::to_string(stride));
    }
  }
  if (!stem_channels.empty()) {
    if (stem_channels.size() > 8 || patch_size % stem_stride() != 0) {
      fail("a stem of total stride " + std::to_string(stem_stride()) +
           " needs a patch size divisible by it, got " + std::to_string(patch_size));
    }
    for (int64_t channels : stem_channels) {
      if (channels <= 0) fail("stem_channels must be positive");
    }
  }
  if (dim <= 0 || depth < 0 || num_heads <= 0 || mlp_hidden_dim <= 0) {
    fail("dim, num_heads and mlp_hidden_dim must be positive and depth >= 0");
  }
  if (dim % num_heads != 0) {
    fail("dim (" + std::to_string(dim) + ") must be divisible by num_heads (" +
         std::to_string(num_heads) + ")");
  }
  if (register_tokens < 0) fail("register_tokens must be >= 0");
  if (norm_eps <= 0) fail("norm_eps must be positive");
  if (num_classes < 0) fail("num_classes must be >= 0");
  if (pooling == Pooling::kToken && !class_token) fail("token pooling needs a class token");
  if (distillation_token && (!class_token || pooling != Pooling::kToken)) {
    fail("a distillation token needs a class token and token pooling (DeiT)");
  }
  if (dropout < 0 || dropout >= 1) fail("dropout must be in [0, 1)");
}

std::string ViTConfig::to_json() const {
  nlohmann::json j = {
      {"image_size", {image_height, image_width}},
      {"patch_size", patch_size},
      {"in_channels", in_channels},
      {"dim", dim},
      {"depth", depth},
      {"num_heads", num_heads},
      {"mlp_hidden_dim", mlp_hidden_dim},
      {"qkv_bias", qkv_bias},
      {"qk_norm", qk_norm},
      {"norm_eps", norm_eps},
      {"class_token", class_token},
      {"register_tokens", register_tokens},
      {"distillation_token", distillation_token},
      {"pos_embed_prefix", pos_embed_prefix},
      {"layer_scale", layer_scale},
      {"layer_scale_init", layer_scale_init},
      {"pre_norm", pre_norm},
      {"patch_bias", patch_bias},
      {"stem_channels", stem_channels},
      {"stem_strides", stem_strides},
      {"pooling", to_string(pooling)},
      {"fc_norm", fc_norm},
      {"num_classes", num_classes},
      {"dropout", dropout},
  };
  // Only where it means something, so other models' stored configs stay as they were.
  if (pooling == Pooling::kMap) j["pool_include_prefix"] = pool_include_prefix;
  return j.dump();
}

ViTConfig ViTConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("ViT config is not valid JSON: ") + json_error_text(e));
  }
  return from_json_value(j);
}

ViTConfig ViTConfig::from_json_value(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("ViT config must be a JSON object");
  ViTConfig c;
  try {
    if (j.contains("image_size")) {
      const auto& size = j.at("image_size");
      if (size.is_array() && size.size() == 2) {
        c.image_height = json_int64(size[0], "ViT config: image_size[0]");
        c.image_width = json_int64(size[1], "ViT config: image_size[1]");
      } else {
        c.image_height = c.image_width = json_int64(size, "ViT config: image_size");
      }
    }
    // Numbers go through json_int64 / json_double: nlohmann's own get<int64_t>() of 1e300 is
    // undefined behaviour.
    auto read = [&](const char* key, auto& field) {
      if (!j.contains(key)) return;
      using Field = std::decay_t<decltype(field)>;
      const auto& value = j.at(key);
      const std::string what = std::string("ViT config: ") + key;
      if constexpr (std::is_same_v<Field, int64_t>) {
        field = json_int64(value, what);
      } else if constexpr (std::is_same_v<Field, double>) {
        field = json_double(value, what);
      } else if constexpr (std::is_same_v<Field, std::vector<int64_t>>) {
        if (!value.is_array()) throw std::invalid_argument(what + " must be a list of integers");
        field.clear();
        for (const auto& item : value) field.push_back(json_int64(item, what));
      } else {
        field = value.get<Field>();
      }
    };
    read("patch_size", c.patch_size);
    read("in_channels", c.in_channels);
    read("dim", c.dim);
    read("depth", c.depth);
    read("num_heads", c.num_heads);
    read("mlp_hidden_dim", c.mlp_hidden_dim);
    read("qkv_bias", c.qkv_bias);
    read("qk_norm", c.qk_norm);
    read("norm_eps", c.norm_eps);
    read("class_token", c.class_token);
    read("register_tokens", c.register_tokens);
    read("distillation_token", c.distillation_token);
    read("pos_embed_prefix", c.pos_embed_prefix);
    read("layer_scale", c.layer_scale);
    read("layer_scale_init", c.layer_scale_init);
    read("pre_norm", c.pre_norm);
    read("patch_bias", c.patch_bias);
    read("stem_channels", c.stem_channels);
    read("stem_strides", c.stem_strides);
    read("fc_norm", c.fc_norm);
    read("pool_include_prefix", c.pool_include_prefix);
    read("num_classes", c.num_classes);
    read("dropout", c.dropout);
    if (j.contains("pooling")) c.pooling = pooling_from_string(j.at("pooling").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("ViT config has a value of the wrong type: ") +
                                json_error_text(e));
  }
  c.validate();
  return c;
}

ViTConfig ViTConfig::from_name(const std::string& name) {
  static const std::regex pattern(R"(vit_(tiny|small|base|large|huge)_patch(\d+)_(\d+))");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) {
    throw std::invalid_argument("unknown ViT '" + name +
                                "' (expected vit_{tiny,small,base,large,huge}_patch<P>_<size>)");
  }
  // Widths, depths and heads of the standard variants (Dosovitskiy et al. 2021, Table 1; timm).
  struct Variant {
    const char* name;
    int64_t dim, depth, heads;
  };
  static const Variant variants[] = {{"tiny", 192, 12, 3},
                                     {"small", 384, 12, 6},
                                     {"base", 768, 12, 12},
                                     {"large", 1024, 24, 16},
                                     {"huge", 1280, 32, 16}};
  ViTConfig c;
  for (const auto& v : variants) {
    if (m[1] == v.name) {
      c.dim = v.dim;
      c.depth = v.depth;
      c.num_heads = v.heads;
    }
  }
  c.mlp_hidden_dim = 4 * c.dim;
  c.patch_size = std::stoll(m[2]);
  c.image_height = c.image_width = std::stoll(m[3]);
  c.validate();
  return c;
}

}  // namespace attnkit::vision
