// vision/checkpoint/import_util.cpp: shared importer helpers and format detection.
#include "vision/checkpoint/import_util.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <torch/torch.h>

#include "vision/errors.h"
#include "vision/json_error.h"

namespace attnkit::vision {

std::string to_string(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::kTimm:
      return "timm";
    case CheckpointFormat::kHuggingFace:
      return "hf";
    case CheckpointFormat::kTorchvision:
      return "torchvision";
  }
  return "timm";
}

CheckpointFormat checkpoint_format_from_string(const std::string& name) {
  if (name == "timm") return CheckpointFormat::kTimm;
  if (name == "hf" || name == "huggingface") return CheckpointFormat::kHuggingFace;
  if (name == "torchvision") return CheckpointFormat::kTorchvision;
  throw std::invalid_argument("unknown checkpoint format '" + name +
                              "' (expected timm, hf or torchvision)");
}

CheckpointFormat detect_checkpoint_format(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const auto config = detail::read_json_file(detail::file_in_directory(path, "config.json"));
    if (config.contains("architecture")) return CheckpointFormat::kTimm;
    if (config.contains("model_type")) return CheckpointFormat::kHuggingFace;
    throw ImportNeedsOption(path +
                                "/config.json: neither a timm config (no \"architecture\") nor "
                                "a Hugging Face config (no \"model_type\")",
                            "format");
  }
  const auto file = SafetensorsFile::open(path);
  if (file.contains("conv_proj.weight")) return CheckpointFormat::kTorchvision;
  if (file.contains("patch_embed.proj.weight")) return CheckpointFormat::kTimm;
  for (const auto& entry : file.entries()) {
    if (entry.name.find("embeddings.patch_embeddings") != std::string::npos) {
      throw CheckpointError(path +
                            ": looks like a Hugging Face checkpoint; pass its directory "
                            "(with config.json and preprocessor_config.json) instead");
    }
  }
  throw ImportNeedsOption(path +
                              ": not a ViT checkpoint attnkit knows (no conv_proj.weight or "
                              "patch_embed.proj.weight)",
                          "format");
}

ImportedModel import_checkpoint(const std::string& path, CheckpointFormat format,
                                const ImportOptions& options) {
  // The importers check what they read; a config value of an unexpected JSON type that slips
  // past them still comes out as this file's error, not as nlohmann's.
  try {
    switch (format) {
      case CheckpointFormat::kTimm:
        return import_timm(path, options);
      case CheckpointFormat::kHuggingFace:
        return import_hf(path, options);
      case CheckpointFormat::kTorchvision:
        return import_torchvision(path, options);
    }
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(path + ": a config value has the wrong type (" + json_error_text(e) +
                          ")");
  } catch (const c10::Error& e) {
    // Shapes are checked before they are read, but q/k/v of mismatched ranks fail to fuse.
    throw CheckpointError(path + ": tensors of inconsistent shapes (" +
                          std::string(e.what_without_backtrace()) + ")");
  }
  throw CheckpointError(path + ": unknown checkpoint format");
}

namespace detail {

nlohmann::json read_json_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw CheckpointError(path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot open for reading");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(path + ": not valid JSON (" + json_error_text(e) + ")");
  }
}

std::string file_in_directory(const std::string& dir, const std::string& name) {
  const auto path = (std::filesystem::path(dir) / name).string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw CheckpointError(dir + ": no " + name + " in this directory");
  }
  return path;
}

torch::Tensor float_tensor(const SafetensorsFile& file, const std::string& name) {
  if (!file.contains(name)) throw CheckpointError(file.path() + ": no tensor '" + name + "'");
  return file.tensor(name, torch::kFloat);
}

std::vector<int64_t> checked_shape(const SafetensorsFile& file, const std::string& name,
                                   size_t rank, const std::string& layout) {
  if (!file.contains(name)) throw CheckpointError(file.path() + ": no tensor '" + name + "'");
  const auto& shape = file.entry(name).shape;
  if (shape.size() != rank) {
    std::string sizes;
    for (size_t i = 0; i < shape.size(); ++i) sizes += (i ? ", " : "") + std::to_string(shape[i]);
    throw CheckpointError(file.path() + ": tensor '" + name + "' has shape [" + sizes + "] (rank " +
                          std::to_string(shape.size()) + "), expected rank " +
                          std::to_string(rank) + ": " + layout);
  }
  return shape;
}

int64_t standard_num_heads(int64_t dim) {
  switch (dim) {
    case 192:
      return 3;
    case 384:
      return 6;
    case 768:
      return 12;
    case 1024:
      return 16;
    case 1280:
      return 16;
    default:
      return 0;
  }
}

int64_t square_side(int64_t cells) {
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(cells))));
  return side * side == cells ? side : 0;
}

void finish_import(ImportedModel& imported, const std::string& source) {
  try {
    imported.config.validate();
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(source + ": " + e.what());
  }
  imported.info.arch = "vit";
  imported.info.config_json = imported.config.to_json();
  if (!imported.info.labels.empty() &&
      static_cast<int64_t>(imported.info.labels.size()) != imported.config.num_classes) {
    throw CheckpointError(source + ": " + std::to_string(imported.info.labels.size()) +
                          " labels for " + std::to_string(imported.config.num_classes) +
                          " classes");
  }
  imported.info.preprocess.channels = imported.config.in_channels;
}

}  // namespace detail
}  // namespace attnkit::vision
