// vision/train/training_precision.h: chooses fp32 or bf16 autocast for training from what the CPU
// computes natively, and says why (bf16 without hardware support is many times slower).
#pragma once

#include <string>

#include "vision/cpu_features.h"

namespace attnkit::vision {

/// The trainer's choice and the reason shown to the user.
struct TrainingPrecision {
  bool bf16 = false;    ///< bf16 autocast for the matmuls; weights, norms and loss stay fp32
  std::string reason;   ///< e.g. "auto: this CPU has no native bf16: AVX2 only"
  std::string warning;  ///< non-empty when the choice will run slowly on this CPU
  std::string name() const { return bf16 ? "bf16" : "fp32"; }
};

/// Resolves `requested` ("auto", "fp32" or "bf16") on a CPU with `cpu`'s features: auto is bf16
/// exactly where bf16 is native (AVX512-BF16 or AMX-BF16). Throws std::invalid_argument for any
/// other value.
TrainingPrecision choose_training_precision(const std::string& requested, const CpuFeatures& cpu);

}  // namespace attnkit::vision
