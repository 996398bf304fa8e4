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

/// Appends one JSON line to a training log; throws WriteError naming the file when it cannot.
void append_training_log(const std::string& path, const std::string& json_line);

/// On resume: drops the log lines of epochs after `completed_epochs` (a run killed after logging
/// an epoch but before its checkpoint logs that epoch again), and a torn last line.
void trim_training_log(const std::string& path, int64_t completed_epochs);

/// Throws TrainingDiverged unless `loss` is finite, before the step it came from is taken:
/// "training diverged at epoch 2, step 37: the loss is nan; <last_path> is kept as the last good
/// checkpoint (lower --lr?)". Epoch and step are 1-based.
void check_finite_loss(double loss, const TrainState& state, const std::string& last_path);

/// Throws TrainingDiverged, naming the first parameter, when any parameter holds NaN or Inf:
/// called before every checkpoint, so no checkpoint ever holds such weights.
void check_finite_parameters(const torch::nn::Module& module, const TrainState& state,
                             const std::string& last_path);

/// Removes the temporaries of last.safetensors, best.safetensors and log.jsonl in `out_dir` that
/// a killed run left behind (vision/atomic_file.h: never those of a running process).
void remove_stale_run_temporaries(const std::string& out_dir);

}  // namespace attnkit::vision
