// apps/train_precision.cpp: --precision for `attn train classifier` and `attn train captioner`.
#include "apps/train_precision.h"

#include <iostream>
#include <stdexcept>

#include "apps/cli_common.h"

namespace attnkit::apps {

const char* const kPrecisionHelp =
    "auto | fp32 | bf16: bf16 autocast for the matmuls (weights, norms and loss stay fp32).\n"
    "auto = bf16 where the CPU computes it natively (AVX512-BF16 or AMX), else fp32\n"
    "('attn info' shows this CPU's choice)";

vision::TrainingPrecision announce_training_precision(const std::string& requested, bool no_bf16,
                                                      bool announce) {
  if (no_bf16 && requested == "bf16") {
    throw UsageError("--no-bf16 and --precision bf16 contradict each other");
  }
  vision::TrainingPrecision precision;
  try {
    precision =
        vision::choose_training_precision(no_bf16 ? "fp32" : requested, vision::cpu_features());
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--") + e.what());  // the library names no flag
  }
  if (no_bf16) precision.reason = "--no-bf16";
  if (!announce) return precision;
  std::cerr << "attn train: precision: " << precision.name() << " (" << precision.reason << ")"
            << std::endl;
  if (!precision.warning.empty()) print_warning("train", precision.warning);
  return precision;
}

}  // namespace attnkit::apps
