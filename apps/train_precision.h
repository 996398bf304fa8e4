// apps/train_precision.h: the `--precision` and `--no-bf16` options both trainers share, and the
// first line of `attn train` that states the choice.
#pragma once

#include <string>

#include "vision/train/training_precision.h"

namespace attnkit::apps {

/// The help text of --precision.
extern const char* const kPrecisionHelp;

/// Resolves --precision (`requested`) and --no-bf16 (the same as --precision fp32) on this CPU,
/// prints "attn train: precision: <name> (<reason>)" on stderr, and a warning when the choice
/// is slow here (nothing when `announce` is false: the other ranks of a data-parallel run).
/// Throws UsageError for a bad value or --no-bf16 with --precision bf16.
vision::TrainingPrecision announce_training_precision(const std::string& requested, bool no_bf16,
                                                      bool announce = true);

}  // namespace attnkit::apps
