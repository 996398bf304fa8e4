// attention/linear.h: a Linear layer that can run inference from bf16 or int8 copies of its
// weights, while its parameters (what is trained and saved) stay float32.
#pragma once

#include <cstdint>
#include <memory>

#include <ATen/core/ivalue.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "attention/packed_linear.h"

namespace attnkit::attention {

/// How a Linear layer computes y = x W^T + b at inference.
enum class LinearPrecision {
  kFp32,  ///< the float32 parameters as they are
  kBf16,  ///< x and W rounded to bf16, products accumulated in fp32, y returned as float32
  kInt8,  ///< W quantised to int8 per output row, x per call (dynamic), through oneDNN
};

/// Which library computes fp32 inference products. OpenBLAS picks its kernels from the CPU
/// model it recognises and falls back to generic SSE3 code on CPUs it does not know (3-4x slower
/// on an AMX Xeon VM); oneDNN dispatches on the instruction sets themselves.
enum class Fp32LinearKernel { kOneDnn, kBlas };

/// The process-wide fp32 inference kernel: oneDNN where this LibTorch has it, else BLAS.
/// With oneDNN, products run packed (PackedLinear) where attnkit was built with libdnnl-dev,
/// else through LibTorch's mkldnn_linear.
Fp32LinearKernel& fp32_linear_kernel();

/// torch::nn::Linear (same parameters, same state-dict keys `weight` and `bias`) whose inference
/// can use reduced-precision copies of the weights. The copies are made by set_precision() and
/// used only where nothing needs them to be exact: in training mode, and when a gradient has to
/// flow through an int8 layer (quantised kernels have none), the fp32 parameters are used.
class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;

  /// x (..., in_features) -> (..., out_features), float32 whatever the precision.
  torch::Tensor forward(const torch::Tensor& x);
  /// The same, but a bf16 layer's result stays bf16, so bf16 layers chain without round trips
  /// through fp32 (x may be float32 or bf16).
  torch::Tensor forward_native(const torch::Tensor& x);
  /// gelu(x W^T + b) (exact GELU), of forward_native's dtype; bias and GELU are fused into the
  /// product where it runs packed.
  torch::Tensor forward_gelu(const torch::Tensor& x);
  /// residual + x W^T + b, of residual's dtype (float32); the add is fused where it runs packed.
  torch::Tensor forward_add(const torch::Tensor& x, const torch::Tensor& residual);
  /// True when forward(x) would compute in bf16 (not training, no gradient needed through x).
  bool runs_bf16(const torch::Tensor& x) const;
  /// True when forward(x) would run on oneDNN kernels with pre-packed weights (fp32 or bf16
  /// inference in a build with oneDNN).
  bool runs_packed(const torch::Tensor& x) const;
  /// True when forward(x) would run the int8 product (int8 inference, no gradient through x).
  bool runs_int8(const torch::Tensor& x) const;
  /// Makes the weight copies `precision` needs from the current parameters (call it again after
  /// they change; kFp32 drops the copies). For kInt8 the process-wide quantised engine must be
  /// oneDNN or QNNPACK (vision::apply_inference_precision sets it); `reduce_range` quantises x
  /// to 7 bits, which CPUs without VNNI need (their u8 x s8 products saturate in 16 bits).
  void set_precision(LinearPrecision precision, bool reduce_range = false);
  LinearPrecision precision() const { return precision_; }

 private:
  torch::Tensor linear_fp32(const torch::Tensor& x);
  /// The packed copy of the current weights for this precision, made or remade when the
  /// parameters changed since (an optimiser step, a state-dict load).
  const PackedLinear& packed();
  /// Training, or a gradient has to flow through x: the fp32 parameters and LibTorch's linear.
  bool exact_for(const torch::Tensor& x) const;

  LinearPrecision precision_ = LinearPrecision::kFp32;
  torch::Tensor weight_bf16_;  ///< (out, in) bf16
  torch::Tensor bias_bf16_;    ///< (out) bf16, or undefined
  c10::IValue packed_int8_;    ///< LinearPackedParamsBase: int8 weight and fp32 bias
  bool reduce_range_ = false;  ///< 7-bit activations where int8 products could saturate
  std::shared_ptr<const PackedLinear> packed_;  ///< fp32 or bf16 oneDNN copy, made on first use
  const void* packed_weight_data_ = nullptr;    ///< the weight storage packed_ was made from
  int64_t packed_weight_version_ = -1;          ///< and its version counter then
};
TORCH_MODULE(Linear);

/// Sets every attention::Linear in `module` (itself included) to `precision`; returns how many.
int64_t set_linear_precision(torch::nn::Module& module, LinearPrecision precision,
                             bool reduce_range = false);

/// "fp32", "bf16" or "int8".
const char* linear_precision_name(LinearPrecision precision);

}  // namespace attnkit::attention
