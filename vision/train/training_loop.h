// vision/train/training_loop.h: the loop both trainers run: epochs over a seeded order of the
// examples, warm-up + cosine learning rate, the optimizer step, NaN checks, checkpoints, the log
// and early stopping. A trainer brings its loss and its validation as functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <nlohmann/json.hpp>

#include "vision/checkpoint/model_info.h"
#include "vision/train/train_state.h"

namespace attnkit::vision {

class DataParallel;

/// The loop's settings, from a trainer's options.
struct TrainingLoopOptions {
  int64_t epochs = 1;
  int64_t max_steps = 0;   ///< stop after this many optimizer steps in all (0 = run the epochs)
  int64_t save_every = 0;  ///< also checkpoint every N steps (0 = at epoch ends only)
  double lr = 1e-3;
  double min_lr = 0;
  double warmup_epochs = 0;
  double grad_clip = 0;  ///< max gradient norm over the trainable parameters (0 = off)
  int64_t patience = 0;  ///< epochs without a better validation figure before stopping (0 = off)
  uint64_t seed = 0;
  bool bf16 = false;  ///< logged as the run's precision
};

/// The loop's settings from a trainer's options (ClassifierTrainOptions,
/// CaptionerTrainOptions: the fields of the same names).
template <class TrainerOptions>
TrainingLoopOptions loop_options(const TrainerOptions& o) {
  TrainingLoopOptions loop;
  loop.epochs = o.epochs;
  loop.max_steps = o.max_steps;
  loop.lr = o.lr;
  loop.min_lr = o.min_lr;
  loop.warmup_epochs = o.warmup_epochs;
  loop.grad_clip = o.grad_clip;
  loop.patience = o.patience;
  loop.seed = o.seed;
  loop.bf16 = o.bf16;
  return loop;
}

/// One step's loss: `loss` is differentiated (this rank's part of the batch); `value` is the
/// whole batch's loss, the same on every rank, so all ranks decide alike on a NaN.
struct StepLoss {
  torch::Tensor loss;
  double value = 0;
};

/// A trainer's validation of an epoch: whether it is the best so far, the figure early stopping
/// follows, and the fields it adds to the log line.
struct EpochValidation {
  bool improved = true;
  double metric = 0;
  nlohmann::json log_fields = nlohmann::json::object();
};

/// The model-specific parts.
struct TrainingLoopSteps {
  /// The loss of the examples `order[batch * batch_size ...]` of this epoch, forward pass done.
  /// `generator` is seeded for this step (augmentation, sampling); torch's global generator is
  /// seeded per step and rank (dropout).
  std::function<StepLoss(const torch::Tensor& order, int64_t batch, at::Generator& generator)> loss;
  /// After each whole epoch (the model in train mode; evaluation may switch it and back).
  std::function<EpochValidation(const EpochProgress& progress)> validate;
  /// After a step: `done` of `total` examples of this epoch, the loss and learning rate.
  std::function<void(int64_t done, int64_t total, double loss, double lr)> on_step;
  /// After an epoch is logged and checkpointed.
  std::function<void(const EpochProgress& progress, const EpochValidation& validation)> on_epoch;
};

/// Where the loop writes and what it trains.
struct TrainingLoopTarget {
  torch::nn::Module* model = nullptr;
  torch::optim::Optimizer* optimizer = nullptr;
  const ModelInfo* info = nullptr;   ///< written into every model file
  DataParallel* parallel = nullptr;  ///< null for one process
  std::string last_path;             ///< the resumable checkpoint
  std::string best_path;             ///< the best validation epoch's model file
  std::string log_path;              ///< one JSON line per epoch
};

/// Trains from `state` (a fresh run or a resumed one) until options.epochs, early stopping or
/// max_steps, `examples` a epoch in batches of `batch_size` (the last ragged batch dropped).
/// Every epoch appends its log line, saves the best model when validation improves, then the
/// checkpoint (rank 0 writes; all ranks run). Throws TrainingDiverged on a NaN or Inf loss or
/// weights, and WriteError when a file cannot be written (the previous one stays).
void run_training_loop(const TrainingLoopTarget& target, const TrainingLoopOptions& options,
                       int64_t examples, int64_t batch_size, TrainState& state,
                       const TrainingLoopSteps& steps);

}  // namespace attnkit::vision
