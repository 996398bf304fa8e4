// apps/train_progress.h: what both `attn train` commands show: the resume, and the progress bar
// of each epoch (on the main rank).
#pragma once

#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include "apps/cli_common.h"
#include "vision/errors.h"

namespace attnkit::apps {

/// One bar per epoch, made at its first step (so a resumed epoch starts part-way), noting the
/// smoothed loss and the learning rate. Does nothing off the main rank.
class TrainingProgress {
 public:
  /// `current_epoch` gives the 0-based epoch being trained; `batch_size` is the items per step.
  TrainingProgress(std::function<int64_t()> current_epoch, int64_t epochs, int64_t batch_size,
                   bool main_rank);

  /// After a step: `done` of `total` items of this epoch.
  void step(int64_t done, int64_t total, double loss, double lr);

  /// Closes the epoch's bar; true when the caller should print the epoch's line.
  bool end_epoch();

  /// For run_training_loop, which closes the bar before an error is printed.
  std::unique_ptr<ProgressBar>& bar() { return bar_; }

 private:
  std::function<int64_t()> current_epoch_;
  int64_t epochs_;
  int64_t batch_size_;
  bool main_rank_;
  std::unique_ptr<ProgressBar> bar_;
  double smoothed_loss_ = -1;
};

/// Resumes `trainer` from the checkpoint `path` (when given) and says where, on the main rank.
/// False after printing why the checkpoint cannot be used.
template <class Trainer>
bool resume_if_asked(Trainer& trainer, const std::string& path, bool main_rank) {
  if (path.empty()) return true;
  try {
    trainer.resume(path);
  } catch (const vision::Error& e) {
    print_error("train", e.what());
    return false;
  }
  if (main_rank) {
    std::cerr << "attn train: resumed at epoch " << trainer.state().epoch + 1 << ", step "
              << trainer.state().step << "\n";
  }
  return true;
}

/// `value` with `digits` decimals ("0.1234"), as the epoch lines print their figures.
std::string fixed_point(double value, int digits);

}  // namespace attnkit::apps
