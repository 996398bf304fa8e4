// vision/train/training_precision.cpp: the precision decision as a pure function of the features.
#include "vision/train/training_precision.h"

#include <stdexcept>

namespace attnkit::vision {

TrainingPrecision choose_training_precision(const std::string& requested, const CpuFeatures& cpu) {
  const std::string units = describe_vector_units(cpu);
  TrainingPrecision p;
  if (requested == "auto") {
    p.bf16 = cpu.native_bf16();
    p.reason = p.bf16 ? "auto: this CPU computes bf16 natively: " + units
                      : "auto: this CPU has no native bf16: " + units;
  } else if (requested == "fp32" || requested == "bf16") {
    p.bf16 = requested == "bf16";
    p.reason = "requested";
    if (p.bf16 && !cpu.native_bf16()) {
      // oneDNN emulates bf16 GEMMs without AVX512-BF16 / AMX: 24x slower than fp32 on Zen 3.
      p.warning = "bf16 requested, but this CPU has no native bf16 (" + units +
                  "): it runs emulated, many times slower than fp32";
    }
  } else {
    throw std::invalid_argument("precision must be auto, fp32 or bf16, got '" + requested + "'");
  }
  return p;
}

}  // namespace attnkit::vision
