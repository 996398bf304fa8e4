// vision/train/train_checkpoint.h: resumable training checkpoints: a model file (loadable by
// every command) that also carries the optimizer state and the trainer's progress.
#pragma once

#include <string>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "vision/checkpoint/model_file.h"

namespace attnkit::vision {

/// Metadata key of the trainer's progress (JSON written by the trainer).
constexpr const char* kTrainStateKey = "attnkit.train_state";

/// Writes model tensors, the optimizer state (as `trainer.optimizer`, LibTorch's archive bytes)
/// and `state_json` under kTrainStateKey, atomically (temporary file + rename).
void save_training_checkpoint(const std::string& path, const torch::nn::Module& module,
                              ModelInfo info, torch::optim::Optimizer& optimizer,
                              const std::string& state_json);

/// Loads what save_training_checkpoint wrote into `module` (strictly) and `optimizer` (which must
/// hold the same parameters in the same order). Returns the state JSON. Throws CheckpointError.
std::string load_training_checkpoint(const std::string& path, torch::nn::Module& module,
                                     torch::optim::Optimizer& optimizer);

}  // namespace attnkit::vision
