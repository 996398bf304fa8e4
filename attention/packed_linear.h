// attention/packed_linear.h: y = x W^T + b through oneDNN, with W reordered once into the layout
// the CPU's kernel reads and the work after the product (bias, GELU, a residual add) fused in.
#pragma once

#include <memory>

#include <torch/types.h>

namespace attnkit::attention {

/// What a packed product does to x W^T + b before it writes it.
enum class LinearEpilogue {
  kNone,         ///< y = x W^T + b
  kGelu,         ///< y = gelu(x W^T + b), the exact (erf) GELU
  kAddResidual,  ///< y = residual + x W^T + b
};

/// True when this build has oneDNN (libdnnl) and oneDNN has an fp32 matmul for this CPU, so
/// PackedLinear can be made.
bool packed_linear_available();

/// True when oneDNN has a matmul for `type` (kFloat or kBFloat16) on this CPU that runs on the
/// CPU's own instructions for it; probed once per type. For bf16 that takes AVX512-BF16 or AMX:
/// oneDNN 2.6 has no bf16 matmul below AVX-512 (an AVX2-only CPU such as AMD Zen 3), and on plain
/// AVX-512 emulates it, slower than fp32.
bool onednn_native_matmul(torch::ScalarType type);

/// A Linear layer's product through oneDNN's matmul primitive. Compared with LibTorch's linear
/// (OpenBLAS, or oneDNN with the weights re-laid-out on every call) it saves the per-call weight
/// reorder, runs the kernel oneDNN picks for this CPU (brgemm from AVX-512 up, AMX tiles for bf16
/// where the CPU has them, oneDNN 2.6's JIT GEMM on AVX2), and does the epilogue in the same pass
/// over the output. Primitives are made once per row count and reused; run() is safe to call from
/// several threads. Where oneDNN has no bf16 matmul, bf16 is emulated on the fp32 kernels: the
/// weights and each input are rounded to bf16 and the product accumulates in fp32, as the native
/// kernel does, at fp32's speed (LibTorch's own bf16 fallback there is more than 20x slower).
class PackedLinear {
 public:
  /// weight (N, K) and bias (N) or undefined, any float dtype; `compute` is kFloat or kBFloat16.
  /// The weights are copied: later changes to `weight` are not seen (make a new PackedLinear).
  PackedLinear(const torch::Tensor& weight, const torch::Tensor& bias, torch::ScalarType compute);
  ~PackedLinear();

  /// x (..., K) -> (..., N) of `out_dtype` (kFloat or kBFloat16). x is converted to the compute
  /// dtype when it is not of it. `residual` (..., N) of out_dtype is needed for kAddResidual.
  torch::Tensor run(const torch::Tensor& x, LinearEpilogue epilogue, torch::ScalarType out_dtype,
                    const torch::Tensor& residual = {}) const;

  torch::ScalarType compute_dtype() const { return compute_; }
  /// True when bf16 runs on the fp32 kernels (no bf16 matmul in oneDNN for this CPU).
  bool emulates_bf16() const;
  /// oneDNN's name for the kernel it runs for `rows` rows (e.g. "brg:avx512_core_amx_bf16").
  std::string kernel_name(int64_t rows) const;

 private:
  /// run() on the kernels' operand types (x is converted to them).
  torch::Tensor run_kernels(const torch::Tensor& x, LinearEpilogue epilogue,
                            torch::ScalarType out_dtype, const torch::Tensor& residual) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
  torch::ScalarType compute_;
};

}  // namespace attnkit::attention
