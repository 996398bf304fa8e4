// vision/train/lr_schedule.cpp: the warm-up + cosine schedule.
#include "vision/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace attnkit::vision {

double warmup_cosine_lr(int64_t step, int64_t warmup_steps, int64_t total_steps, double base_lr,
                        double min_lr) {
  if (warmup_steps > 0 && step < warmup_steps) {
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps - 1);
  const double progress = std::clamp(
      static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps), 0.0, 1.0);
  return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace attnkit::vision
