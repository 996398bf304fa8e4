// vision/train/lr_schedule.h: linear warm-up then cosine decay, per optimizer step.
#pragma once

#include <cstdint>

namespace attnkit::vision {

/// Learning rate at `step` (0-based) of `total_steps`: linear from base_lr / warmup_steps up to
/// base_lr over the first warmup_steps, then half a cosine down to min_lr at the last step
/// (Loshchilov & Hutter 2017, without restarts).
double warmup_cosine_lr(int64_t step, int64_t warmup_steps, int64_t total_steps, double base_lr,
                        double min_lr);

}  // namespace attnkit::vision
