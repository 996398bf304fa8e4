// vision/explain/noisy_linear_imputation.h: ROAD's noisy linear imputation (Rong, Leemann,
// Borisov, Kasneci and Kasneci, "A Consistent and Efficient Evaluation Strategy for Attribution
// Methods", ICML 2022): removed pixels become the weighted mean of their neighbours, plus noise.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

namespace attnkit::vision {

struct ImputationOptions {
  double noise = 0.01;      ///< std of the Gaussian noise added to imputed pixels (ROAD's)
  double tolerance = 1e-6;  ///< conjugate gradients stop at this relative residual
  int64_t max_iterations = 10000;
};

/// Fills the pixels where `keep` is false so that each equals the weighted mean of its in-image
/// 8-neighbours (direct neighbours weigh 1/6, diagonal ones 1/12, as ROAD's NoisyLinearImputer),
/// every channel on its own, then adds N(0, noise^2) to them. ROAD solves the same sparse linear
/// system directly; here it is solved by conjugate gradients, to `tolerance`. Where no pixel is
/// kept the system has no anchor and the pixels become 0 (plus noise).
/// images (B, C, H, W), keep (B, 1, H, W) bool -> (B, C, H, W).
torch::Tensor noisy_linear_imputation(const torch::Tensor& images, const torch::Tensor& keep,
                                      const ImputationOptions& options = {},
                                      c10::optional<at::Generator> generator = c10::nullopt);

}  // namespace attnkit::vision
