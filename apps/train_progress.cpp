// apps/train_progress.cpp: the trainers' per-epoch progress bar.
#include "apps/train_progress.h"

#include <iomanip>
#include <sstream>

namespace attnkit::apps {

TrainingProgress::TrainingProgress(std::function<int64_t()> current_epoch, int64_t epochs,
                                   int64_t batch_size, bool main_rank)
    : current_epoch_(std::move(current_epoch)),
      epochs_(epochs),
      batch_size_(batch_size),
      main_rank_(main_rank) {}

void TrainingProgress::step(int64_t done, int64_t total, double loss, double lr) {
  if (!main_rank_) return;
  if (!bar_) {
    bar_ = std::make_unique<ProgressBar>(
        "epoch " + std::to_string(current_epoch_() + 1) + "/" + std::to_string(epochs_), total);
    bar_->advance(done - batch_size_);
  }
  // One batch's loss jumps about; the bar shows a moving average.
  smoothed_loss_ = smoothed_loss_ < 0 ? loss : 0.95 * smoothed_loss_ + 0.05 * loss;
  std::ostringstream note;
  note << "loss " << fixed_point(smoothed_loss_, 4) << " lr " << std::scientific
       << std::setprecision(2) << lr;
  bar_->advance(batch_size_, note.str());
}

bool TrainingProgress::end_epoch() {
  if (!main_rank_) return false;
  if (bar_) bar_->finish();
  bar_.reset();
  return true;
}

std::string fixed_point(double value, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

}  // namespace attnkit::apps
