// vision/train/train_checkpoint.h: resumable training checkpoints: a model file (loadable by
// every command) that also carries the optimizer state and the trainer's progress.
#pragma once

#include <string>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "vision/checkpoint/model_file.h"
#include "vision/train/train_state.h"

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

/// load_training_checkpoint, then the trainer's progress it carries. Throws CheckpointError
/// naming `path`.
TrainState resume_training_checkpoint(const std::string& path, torch::nn::Module& module,
                                      torch::optim::Optimizer& optimizer);

/// What a trainer writes into its output directory: "last.safetensors" (resumable),
/// "best.safetensors" (the best validation epoch), "log.jsonl" (one line per epoch).
std::string run_file(const std::string& out_dir, const std::string& name);

/// Appends one JSON line to a training log; throws Error naming the file when it cannot.
void append_training_log(const std::string& path, const std::string& json_line);

}  // namespace attnkit::vision
