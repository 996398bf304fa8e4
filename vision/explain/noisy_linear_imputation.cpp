// vision/explain/noisy_linear_imputation.cpp: ROAD's imputation, solved by conjugate gradients.
//
// For a removed pixel i with in-image neighbours j (weights w_ij): d_i x_i - sum over removed j of
// w_ij x_j = sum over kept j of w_ij v_j, with d_i = sum of w_ij. The matrix D - W is symmetric
// and, for every region of removed pixels that touches a kept one, positive definite: conjugate
// gradients converge to the unique solution.
#include "vision/explain/noisy_linear_imputation.h"

#include <torch/torch.h>

namespace attnkit::vision {
namespace {

namespace F = torch::nn::functional;

/// Sum over the 8 in-image neighbours of w * x, per channel. x (B, C, H, W).
torch::Tensor neighbour_sum(const torch::Tensor& x) {
  const double d = 1.0 / 6.0, c = 1.0 / 12.0;
  const auto kernel = torch::tensor({c, d, c, d, 0.0, d, c, d, c}, x.options()).view({1, 1, 3, 3});
  const int64_t channels = x.size(1);
  return F::conv2d(x, kernel.expand({channels, 1, 3, 3}),
                   F::Conv2dFuncOptions().padding(1).groups(channels));
}

/// Per (image, channel) dot products over the pixels: (B, C, H, W) x 2 -> (B, C, 1, 1).
torch::Tensor pixel_dot(const torch::Tensor& a, const torch::Tensor& b) {
  return (a * b).sum({2, 3}, /*keepdim=*/true);
}

}  // namespace

torch::Tensor noisy_linear_imputation(const torch::Tensor& images, const torch::Tensor& keep,
                                      const ImputationOptions& options,
                                      c10::optional<at::Generator> generator) {
  TORCH_CHECK(images.dim() == 4 && keep.dim() == 4 && keep.size(1) == 1 &&
                  keep.size(0) == images.size(0) && keep.size(2) == images.size(2) &&
                  keep.size(3) == images.size(3),
              "noisy_linear_imputation: expected images (B, C, H, W) and keep (B, 1, H, W), got ",
              images.sizes(), " and ", keep.sizes());
  torch::NoGradGuard no_grad;
  // Double precision: the system is badly conditioned for large holes.
  const auto values = images.to(torch::kDouble);
  const auto known = keep.to(torch::kDouble).expand_as(values).contiguous();
  const auto unknown = 1.0 - known;
  const auto degree = neighbour_sum(torch::ones_like(values));  // d_i: in-image weights
  auto apply = [&](const torch::Tensor& x) {  // (D - W_uu) x on the unknown pixels
    return unknown * (degree * x - neighbour_sum(x * unknown));
  };
  const auto rhs = unknown * neighbour_sum(values * known);
  auto x = torch::zeros_like(values);
  auto residual = rhs.clone();
  auto direction = residual.clone();
  auto residual_norm = pixel_dot(residual, residual);
  const auto stop = (options.tolerance * options.tolerance) * pixel_dot(rhs, rhs).clamp_min(1e-300);
  for (int64_t it = 0; it < options.max_iterations; ++it) {
    if (residual_norm.le(stop).all().item<bool>()) break;
    const auto product = apply(direction);
    const auto curvature = pixel_dot(direction, product);
    // A converged (or anchorless, all-zero) system stops moving rather than dividing by zero.
    const auto step = torch::where(curvature.gt(0), residual_norm / curvature.clamp_min(1e-300),
                                   torch::zeros_like(curvature));
    x = x + step * direction;
    residual = residual - step * product;
    const auto next_norm = pixel_dot(residual, residual);
    const auto beta = torch::where(residual_norm.gt(0), next_norm / residual_norm.clamp_min(1e-300),
                                   torch::zeros_like(next_norm));
    direction = residual + beta * direction;
    residual_norm = next_norm;
  }
  auto noise = torch::randn(values.sizes(), generator, values.options()) * options.noise;
  return (values * known + (x + noise) * unknown).to(images.scalar_type());
}

}  // namespace attnkit::vision
