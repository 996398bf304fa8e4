// vision/checkpoint/model_info.cpp: `__metadata__` strings to ModelInfo and the configs it
// describes, with the checks that relate them.
#include "vision/checkpoint/model_info.h"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "vision/errors.h"
#include "vision/json_error.h"

namespace attnkit::vision {
namespace {

constexpr const char* kArchKey = "attnkit.arch";
constexpr const char* kConfigKey = "attnkit.config";
constexpr const char* kLabelsKey = "attnkit.labels";
constexpr const char* kPreprocessKey = "attnkit.preprocess";
constexpr const char* kSourceKey = "attnkit.source";

void check_arch(const ModelInfo& info, const std::string& expected, const std::string& path) {
  if (info.arch != expected) {
    throw CheckpointError(path + ": is a '" + info.arch + "' model, expected a '" + expected + "'");
  }
}

void check_channels(const ModelInfo& info, int64_t model_channels, const char* model,
                    const std::string& path) {
  if (info.preprocess.channels != model_channels) {
    throw CheckpointError(path + ": preprocessing gives " +
                          std::to_string(info.preprocess.channels) + " channels, the " + model +
                          " takes " + std::to_string(model_channels));
  }
}

}  // namespace

std::string class_label(const ModelInfo& info, int64_t index) {
  if (index >= 0 && index < static_cast<int64_t>(info.labels.size())) return info.labels[index];
  return "class " + std::to_string(index);
}

ModelInfo model_info_from_metadata(const std::map<std::string, std::string>& metadata,
                                   const std::string& path) {
  ModelInfo info;
  auto arch = metadata.find(kArchKey);
  if (arch == metadata.end()) {
    throw CheckpointError(path + ": not an attnkit model (no '" + kArchKey +
                          "' in the safetensors metadata; import public checkpoints with "
                          "'attn import')");
  }
  info.arch = arch->second;
  if (auto it = metadata.find(kConfigKey); it != metadata.end()) info.config_json = it->second;
  if (auto it = metadata.find(kSourceKey); it != metadata.end()) info.source = it->second;
  if (auto it = metadata.find(kLabelsKey); it != metadata.end()) {
    try {
      info.labels = nlohmann::json::parse(it->second).get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      throw CheckpointError(path + ": metadata '" + kLabelsKey +
                            "' is not a JSON list of strings (" + json_error_text(e) + ")");
    }
  }
  if (auto it = metadata.find(kPreprocessKey); it != metadata.end()) {
    try {
      info.preprocess = PreprocessConfig::from_json(it->second);
    } catch (const std::invalid_argument& e) {
      throw CheckpointError(path + ": metadata '" + kPreprocessKey + "': " + e.what());
    }
  }
  for (const auto& [key, value] : metadata) {
    if (key.rfind("attnkit.", 0) == 0 && key != kArchKey && key != kConfigKey &&
        key != kLabelsKey && key != kPreprocessKey && key != kSourceKey) {
      info.extra[key] = value;
    }
  }
  return info;
}

std::map<std::string, std::string> model_info_to_metadata(const ModelInfo& info) {
  std::map<std::string, std::string> metadata = info.extra;
  metadata[kArchKey] = info.arch;
  metadata[kConfigKey] = info.config_json;
  metadata[kLabelsKey] = nlohmann::json(info.labels).dump();
  metadata[kPreprocessKey] = info.preprocess.to_json();
  metadata[kSourceKey] = info.source;
  return metadata;
}

ViTConfig vit_config_from_info(const ModelInfo& info, const std::string& path) {
  check_arch(info, "vit", path);
  ViTConfig config;
  try {
    config = ViTConfig::from_json(info.config_json);
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(path + ": " + e.what());
  }
  if (!info.labels.empty() && static_cast<int64_t>(info.labels.size()) != config.num_classes) {
    throw CheckpointError(path + ": has " + std::to_string(info.labels.size()) + " labels for " +
                          std::to_string(config.num_classes) + " classes");
  }
  check_channels(info, config.in_channels, "model", path);
  return config;
}

CaptionerSpec captioner_spec_from_info(const ModelInfo& info, const std::string& path) {
  check_arch(info, "captioner", path);
  CaptionerSpec spec;
  try {
    spec.config = CaptionerConfig::from_json(info.config_json);
    auto vocab = info.extra.find(kVocabularyKey);
    if (vocab == info.extra.end()) {
      throw CheckpointError(path + ": no vocabulary ('" + kVocabularyKey + "' metadata)");
    }
    spec.vocabulary = Vocabulary::from_json(vocab->second);
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(path + ": " + e.what());
  }
  if (spec.vocabulary.size() != spec.config.vocab_size) {
    throw CheckpointError(path + ": the vocabulary has " + std::to_string(spec.vocabulary.size()) +
                          " words, the model " + std::to_string(spec.config.vocab_size));
  }
  check_channels(info, spec.config.encoder.in_channels, "encoder", path);
  return spec;
}

}  // namespace attnkit::vision
