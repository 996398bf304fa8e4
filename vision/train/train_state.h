// vision/train/train_state.h: where a training run stands; written into every checkpoint so
// --resume continues exactly (the same batches, the same schedule, the same early stopping).
#pragma once

#include <cstdint>
#include <string>

namespace attnkit::vision {

struct TrainState {
  int64_t epoch = 0;          ///< current epoch, 0-based
  int64_t batch = 0;          ///< next batch within the epoch
  int64_t step = 0;           ///< optimizer steps taken
  double epoch_loss_sum = 0;  ///< running training loss of the current epoch
  int64_t epoch_loss_count = 0;
  double best_metric = -1;  ///< best validation figure so far (top-1, BLEU-4)
  int64_t best_epoch = -1;
  int64_t epochs_without_improvement = 0;
  double elapsed_seconds = 0;  ///< training time so far, over all sessions
  bool stopped_early = false;  ///< patience ran out (a resume with more epochs does not restart)
  double baseline = 0;         ///< REINFORCE's moving-average baseline (hard attention)
  bool baseline_set = false;

  /// Closes the current epoch: records `metric` as the best when `improved`, counts epochs
  /// without improvement, stops early after `patience` of them (0 = never), and moves to the
  /// next epoch's first batch with a fresh loss sum.
  void end_epoch(bool improved, double metric, int64_t patience);

  std::string to_json() const;
  static TrainState from_json(const std::string& json);  ///< throws CheckpointError
};

/// What the training loop knows of an epoch when it ends; the trainers' epoch reports add their
/// validation figures.
struct EpochProgress {
  int64_t epoch = 0;  ///< 1-based
  int64_t step = 0;
  double lr = 0;
  double train_loss = 0;
  double epoch_seconds = 0;
  double examples_per_second = 0;  ///< this session's part of the epoch
  double elapsed_seconds = 0;      ///< all sessions, validation included
};

/// A seed for (run seed, stream, index) so every batch draws independent, reproducible numbers.
uint64_t mix_seed(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace attnkit::vision
