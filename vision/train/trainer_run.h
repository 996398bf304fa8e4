// vision/train/trainer_run.h: what every trainer has: its run directory (last.safetensors,
// best.safetensors, log.jsonl) and where the run stands.
#pragma once

#include <string>

#include "vision/train/train_state.h"

namespace attnkit::vision {

class TrainerRun {
 public:
  const TrainState& state() const { return state_; }
  std::string last_path() const;  ///< the resumable checkpoint
  std::string best_path() const;  ///< the model file of the best validation epoch
  std::string log_path() const;   ///< one JSON line per epoch

 protected:
  explicit TrainerRun(std::string out_dir) : out_dir_(std::move(out_dir)) {}
  /// Makes the run directory and removes the temporaries a killed run left in it.
  void prepare_run_directory() const;

  std::string out_dir_;
  TrainState state_;
};

}  // namespace attnkit::vision
