// vision/checkpoint/model_file.cpp: saving and strictly loading attnkit model files.
#include "vision/checkpoint/model_file.h"

#include <set>
#include <sstream>

#include <torch/torch.h>

#include "vision/checkpoint/safetensors.h"
#include "vision/errors.h"

namespace attnkit::vision {
namespace {

std::string shape_string(c10::IntArrayRef sizes) {
  std::ostringstream out;
  out << sizes;
  return out.str();
}

/// "a, b, c" with at most `limit` names, then "and N more".
std::string name_list(const std::vector<std::string>& names, size_t limit = 8) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  if (names.size() > limit) out += ", and " + std::to_string(names.size() - limit) + " more";
  return out;
}

}  // namespace

NamedTensors model_tensors_from_file(const std::string& path) {
  return model_tensors_from_file(SafetensorsFile::open(path));
}

NamedTensors model_tensors_from_file(const SafetensorsFile& file) {
  NamedTensors tensors;
  for (const auto& entry : file.entries()) {
    if (entry.name.rfind(kTrainerTensorPrefix, 0) == 0) continue;
    tensors.emplace_back(entry.name, file.tensor(entry.name));
  }
  return tensors;
}

NamedTensors module_tensors(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    out.emplace_back(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    out.emplace_back(item.key(), item.value());
  }
  return out;
}

void load_tensors_strict(torch::nn::Module& module, const NamedTensors& tensors,
                         const std::string& file) {
  std::map<std::string, torch::Tensor> targets;
  for (auto& [name, tensor] : module_tensors(module)) targets.emplace(name, tensor);

  std::vector<std::string> unexpected, mismatched, wrong_dtype;
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    auto it = targets.find(name);
    if (it == targets.end()) {
      unexpected.push_back(name);
      continue;
    }
    seen.insert(name);
    if (tensor.sizes() != it->second.sizes()) {
      mismatched.push_back("'" + name + "' has shape " + shape_string(tensor.sizes()) +
                           ", model expects " + shape_string(it->second.sizes()));
    } else if (!tensor.is_floating_point() && it->second.is_floating_point()) {
      wrong_dtype.push_back("'" + name + "' is " +
                            std::string(c10::toString(tensor.scalar_type())) +
                            ", model expects a floating type");
    }
  }
  // A NaN or Inf weight makes every output NaN ("probability": null next to a label), so it
  // is refused at load, one pass over the floating tensors.
  std::vector<std::string> non_finite;
  for (const auto& [name, tensor] : tensors) {
    if (tensor.is_floating_point() && !torch::isfinite(tensor).all().item<bool>()) {
      non_finite.push_back("'" + name + "'");
    }
  }
  std::vector<std::string> missing;
  for (const auto& [name, tensor] : targets) {
    if (!seen.count(name)) missing.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty() || !wrong_dtype.empty() ||
      !non_finite.empty()) {
    std::vector<std::string> parts;
    if (!missing.empty()) {
      parts.push_back(std::to_string(missing.size()) + " missing tensor(s) (" + name_list(missing) +
                      ")");
    }
    if (!unexpected.empty()) {
      parts.push_back(std::to_string(unexpected.size()) + " unexpected tensor(s) (" +
                      name_list(unexpected) + ")");
    }
    if (!mismatched.empty()) {
      parts.push_back(std::to_string(mismatched.size()) +
                      " with a wrong shape: " + name_list(mismatched, 4));
    }
    if (!wrong_dtype.empty()) {
      parts.push_back(std::to_string(wrong_dtype.size()) +
                      " with a wrong dtype: " + name_list(wrong_dtype, 4));
    }
    if (!non_finite.empty()) {
      parts.push_back(std::to_string(non_finite.size()) + " with NaN or Inf values (" +
                      name_list(non_finite) + ")");
    }
    std::string message = file + ": tensors do not fit the model: ";
    for (size_t i = 0; i < parts.size(); ++i) message += (i ? "; " : "") + parts[i];
    message += " (expected " + std::to_string(targets.size()) + " tensors, got " +
               std::to_string(tensors.size()) + ")";
    throw CheckpointError(message);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : tensors) {
    auto& target = targets.at(name);
    target.copy_(tensor.to(target.scalar_type()));
  }
}

void save_model(const std::string& path, const torch::nn::Module& module, const ModelInfo& info,
                const NamedTensors& extra_tensors) {
  NamedTensors tensors;
  for (auto& [name, tensor] : module_tensors(module)) {
    tensors.emplace_back(name, tensor.detach());
  }
  tensors.insert(tensors.end(), extra_tensors.begin(), extra_tensors.end());
  save_safetensors(path, tensors, model_info_to_metadata(info));
}

ModelInfo read_model_info(const std::string& path) {
  return model_info_from_metadata(SafetensorsFile::open(path).metadata(), path);
}

LoadedViT load_vit(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  LoadedViT loaded;
  loaded.info = model_info_from_metadata(file.metadata(), path);
  loaded.config = vit_config_from_info(loaded.info, path);
  loaded.model = VisionTransformer(loaded.config);
  load_tensors_strict(*loaded.model, model_tensors_from_file(file), path);
  loaded.model->eval();
  return loaded;
}

int64_t load_vit_trunk(VisionTransformer& target, const LoadedViT& source,
                       const std::string& path) {
  const auto& from = source.config;
  const auto& to = target->config();
  if (from.in_channels != to.in_channels) {
    throw CheckpointError(path + ": takes " + std::to_string(from.in_channels) +
                          " input channels, the new model " + std::to_string(to.in_channels));
  }
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> targets;
  for (auto& [name, tensor] : module_tensors(*target)) targets.emplace(name, tensor);
  int64_t copied = 0;
  if (to.depth > from.depth) {
    throw CheckpointError(path + ": has " + std::to_string(from.depth) +
                          " blocks, the new model needs " + std::to_string(to.depth));
  }
  for (const auto& [name, tensor] : module_tensors(*source.model)) {
    if (name.rfind("head", 0) == 0) continue;
    if (name.rfind("blocks.", 0) == 0 && std::stoll(name.substr(7)) >= to.depth) continue;
    torch::Tensor value = tensor;
    if (name == "pos_embed") {
      const int64_t prefix = from.pos_embed_prefix ? from.num_prefix_tokens() : 0;
      value = resample_position_embeddings(tensor, prefix, from.grid_height(), from.grid_width(),
                                           to.grid_height(), to.grid_width());
    }
    auto it = targets.find(name);
    if (it == targets.end() || it->second.sizes() != value.sizes()) {
      throw CheckpointError(path + ": tensor '" + name +
                            "' does not fit the new model (the same trunk is needed; only the "
                            "head and the input size may change)");
    }
    it->second.copy_(value);
    ++copied;
  }
  return copied;
}

}  // namespace attnkit::vision
