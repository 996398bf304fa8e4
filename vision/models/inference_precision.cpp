// vision/models/inference_precision.cpp: the inference precision decision and the model
// preparation.
#include "vision/models/inference_precision.h"

#include <algorithm>
#include <stdexcept>

#include <ATen/Context.h>

#include "attention/packed_linear.h"
#include "vision/errors.h"

namespace attnkit::vision {

InferencePrecision choose_inference_precision(const std::string& requested,
                                              const CpuFeatures& cpu) {
  using attention::LinearPrecision;
  const std::string units = describe_vector_units(cpu);
  InferencePrecision p;
  if (requested == "auto") {
    if (cpu.native_bf16()) {
      p.linear = LinearPrecision::kBf16;
    } else if (cpu.avx2) {
      p.linear = LinearPrecision::kInt8;
    }
    p.reason = "auto: " + units;
  } else if (requested == "fp32") {
    p.reason = "requested";
  } else if (requested == "bf16") {
    p.linear = LinearPrecision::kBf16;
    p.reason = "requested";
    if (!cpu.native_bf16()) {
      // The packed kernels emulate bf16 on fp32 ones there (bf16's rounding at fp32's speed);
      // without them (no libdnnl-dev at build time) LibTorch's emulation is 24x slower than
      // fp32 on Zen 3.
      p.warning = "bf16 requested, but this CPU has no native bf16 (" + units +
                  "): it runs emulated, " +
                  (attention::packed_linear_available() ? "no faster than fp32"
                                                        : "many times slower than fp32") +
                  "; int8 is the fast choice here";
    }
  } else if (requested == "int8") {
    p.linear = LinearPrecision::kInt8;
    p.reason = "requested";
    if (!cpu.avx2) {
      p.warning = "int8 requested, but this CPU has no AVX2: it may be slower than fp32";
    }
  } else {
    throw std::invalid_argument("precision must be fp32, bf16, int8 or auto, got '" + requested +
                                "'");
  }
  // u8 x s8 products saturate 16-bit sums without VNNI; oneDNN then needs 7-bit activations
  // (PyTorch warns the same for its onednn qconfig on such CPUs).
  p.int8_reduce_range = !(cpu.avx512_vnni || cpu.avx_vnni);
  return p;
}

void apply_inference_precision(torch::nn::Module& model, const InferencePrecision& precision) {
  if (precision.linear == attention::LinearPrecision::kInt8) {
    const auto& engines = at::globalContext().supportedQEngines();
    auto has = [&](at::QEngine e) {
      return std::find(engines.begin(), engines.end(), e) != engines.end();
    };
    if (has(at::QEngine::ONEDNN)) {
      at::globalContext().setQEngine(at::QEngine::ONEDNN);
    } else if (has(at::QEngine::QNNPACK)) {
      at::globalContext().setQEngine(at::QEngine::QNNPACK);
    } else {
      throw Error("int8 precision: this LibTorch has no quantised engine (oneDNN or QNNPACK)");
    }
  }
  attention::set_linear_precision(model, precision.linear, precision.int8_reduce_range);
}

}  // namespace attnkit::vision
