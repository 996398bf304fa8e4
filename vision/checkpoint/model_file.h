// vision/checkpoint/model_file.h: attnkit's model file: one .safetensors whose `__metadata__`
// describes the model (architecture, config, labels, preprocessing, source).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "vision/checkpoint/model_info.h"
#include "vision/models/vit.h"
#include "vision/models/vit_config.h"

namespace attnkit::vision {

/// Named tensors, in the model's parameter order.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Tensor name prefix of trainer-only data (optimizer state in training checkpoints), skipped
/// when a file is loaded as a model.
constexpr const char* kTrainerTensorPrefix = "trainer.";

/// Every tensor of a safetensors file except trainer-only ones: what a model loads.
/// Throws CheckpointError.
NamedTensors model_tensors_from_file(const std::string& path);

class SafetensorsFile;
/// The same from a file already open (its metadata read first), so it is mapped once.
NamedTensors model_tensors_from_file(const SafetensorsFile& file);

/// Every parameter and buffer of `module` with its full dotted name.
NamedTensors module_tensors(const torch::nn::Module& module);

/// Copies `tensors` into `module`'s parameters and buffers, strictly: every name must exist with
/// the same shape, and every parameter must be given. Floating tensors are converted to the
/// parameter's dtype. All problems are collected into one CheckpointError:
/// "<file>: 2 missing tensors (blocks.0.attn.qkv.weight, ...), 1 unexpected (...), 1 with a
/// wrong shape: 'head.weight' has shape [10, 192], model expects [1000, 192]".
void load_tensors_strict(torch::nn::Module& module, const NamedTensors& tensors,
                         const std::string& file);

/// Writes the module's tensors (then `extra_tensors`) and `info` as metadata to `path`
/// (atomically).
void save_model(const std::string& path, const torch::nn::Module& module, const ModelInfo& info,
                const NamedTensors& extra_tensors = {});

/// Reads only the metadata of a model file. Throws CheckpointError.
ModelInfo read_model_info(const std::string& path);

/// A ViT model file: the module (eval mode, float32) and its description.
struct LoadedViT {
  VisionTransformer model{nullptr};
  ViTConfig config;
  ModelInfo info;
};

/// Loads a ViT model file strictly. Throws CheckpointError naming the file and every problem
/// (not a safetensors file, not a ViT, bad config, missing/unexpected/mis-shaped tensors).
LoadedViT load_vit(const std::string& path);

/// Copies every tensor of `source` except the head into `target` (same trunk architecture; the
/// head and the input size may differ), resampling the position embeddings to the target's
/// grid: fine-tuning and captioner encoders start this way. A target with fewer blocks takes
/// the source's first ones (a captioner encoder cut at an earlier, more local layer). Returns
/// the tensors copied; throws CheckpointError naming `path` when a tensor does not fit.
int64_t load_vit_trunk(VisionTransformer& target, const LoadedViT& source, const std::string& path);

}  // namespace attnkit::vision
