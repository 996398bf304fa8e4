// vision/models/inference_precision.h: chooses fp32, bf16 or int8 for inference from what the CPU
// computes natively, and prepares a model for it.
#pragma once

#include <string>

#include <torch/nn/module.h>

#include "attention/linear.h"
#include "vision/cpu_features.h"

namespace attnkit::vision {

/// The choice for one run and the reason shown to the user.
struct InferencePrecision {
  attention::LinearPrecision linear = attention::LinearPrecision::kFp32;
  bool int8_reduce_range = false;  ///< 7-bit activations (CPUs without VNNI)
  std::string reason;              ///< e.g. "auto: AMX-BF16"
  std::string warning;             ///< non-empty when the choice runs slowly on this CPU
  std::string name() const { return attention::linear_precision_name(linear); }
};

/// Resolves `requested` ("fp32", "bf16", "int8" or "auto") on a CPU with `cpu`'s features.
/// auto: bf16 where bf16 is native (AVX512-BF16, AMX-BF16); else int8 where AVX2 is (oneDNN's
/// dynamic int8 runs a ViT-B MLP 2x faster than fp32 on Zen 3); else fp32. Throws
/// std::invalid_argument for any other value.
InferencePrecision choose_inference_precision(const std::string& requested, const CpuFeatures& cpu);

/// Prepares every transformer Linear layer in `model` (attention::Linear: qkv, proj, fc1, fc2)
/// for `precision`; heads, patch embeddings, norms, softmax and the captioner's decoder stay
/// fp32. For int8 selects LibTorch's oneDNN quantised engine (QNNPACK where there is none).
/// Throws vision::Error when this LibTorch has no quantised engine for int8.
void apply_inference_precision(torch::nn::Module& model, const InferencePrecision& precision);

}  // namespace attnkit::vision
