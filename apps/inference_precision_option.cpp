// apps/inference_precision_option.cpp: --precision for the commands that run models.
#include "apps/inference_precision_option.h"

#include <iostream>
#include <stdexcept>

#include "apps/cli_common.h"

namespace attnkit::apps {

const char* const kInferencePrecisionHelp =
    "fp32 | bf16 | int8 | auto: the precision of the transformer's matmuls (qkv, proj, MLP);\n"
    "norms, softmax, heads and the logits stay fp32. bf16 rounds inputs and weights to bf16;\n"
    "int8 quantises the weights per row and the activations per call (oneDNN). auto = bf16\n"
    "where the CPU computes it natively (AVX512-BF16, AMX), else int8 (AVX2), else fp32.\n"
    "fp32 matches the reference implementations; the README gives the agreement of the others";

vision::InferencePrecision choose_precision_option(const std::string& command,
                                                   const std::string& requested) {
  vision::InferencePrecision precision;
  try {
    precision = vision::choose_inference_precision(requested, vision::cpu_features());
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--") + e.what());  // the library names no flag
  }
  if (precision.linear != attention::LinearPrecision::kFp32) {
    std::cerr << "attn " << command << ": precision: " << precision.name() << " ("
              << precision.reason << ")" << std::endl;
  }
  if (!precision.warning.empty()) print_warning(command, precision.warning);
  return precision;
}

}  // namespace attnkit::apps
