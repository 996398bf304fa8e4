// vision/explain/perturbation.cpp: batched target probabilities, removal baselines, map upsampling.
#include "vision/explain/perturbation.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace attnkit::vision {

torch::Tensor target_probabilities(const ProbabilityFn& model, const torch::Tensor& images,
                                   const torch::Tensor& targets, int64_t batch_size) {
  TORCH_CHECK(images.dim() == 4 && targets.dim() == 1 && targets.size(0) == images.size(0),
              "target_probabilities: expected images (N, C, H, W) and targets (N), got ",
              images.sizes(), " and ", targets.sizes());
  TORCH_CHECK(batch_size > 0, "target_probabilities: batch size must be positive, got ",
              batch_size);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < images.size(0); start += batch_size) {
    const int64_t n = std::min(batch_size, images.size(0) - start);
    const auto probabilities = model(images.narrow(0, start, n)).to(torch::kFloat);
    TORCH_CHECK(probabilities.dim() == 2 && probabilities.size(0) == n,
                "target_probabilities: the model returned ", probabilities.sizes(), " for ", n,
                " images");
    parts.push_back(
        probabilities.gather(1, targets.narrow(0, start, n).view({-1, 1}).to(torch::kLong))
            .squeeze(1));
  }
  if (parts.empty()) return torch::zeros({0});
  return torch::cat(parts);
}

RemovalBaseline removal_baseline_from_string(const std::string& name) {
  if (name == "blur") return RemovalBaseline::kBlur;
  if (name == "mean") return RemovalBaseline::kMean;
  if (name == "zero") return RemovalBaseline::kZero;
  throw std::invalid_argument("unknown removal baseline '" + name + "' (blur, mean or zero)");
}

std::string removal_baseline_name(RemovalBaseline baseline) {
  switch (baseline) {
    case RemovalBaseline::kBlur:
      return "blur";
    case RemovalBaseline::kMean:
      return "mean";
    case RemovalBaseline::kZero:
      return "zero";
  }
  return "?";
}

namespace {

/// A separable Gaussian blur, reflecting at the borders, kernel radius 3 sigma.
torch::Tensor gaussian_blur(const torch::Tensor& images, double sigma) {
  const int64_t channels = images.size(1);
  int64_t radius = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3.0 * sigma)));
  // Reflection padding needs the radius below each side.
  radius = std::min({radius, images.size(2) - 1, images.size(3) - 1});
  if (radius < 1) return images.clone();
  auto x = torch::arange(-radius, radius + 1, images.options());
  auto kernel = torch::exp(-(x * x) / (2.0 * sigma * sigma));
  kernel = kernel / kernel.sum();
  namespace F = torch::nn::functional;
  auto padded =
      F::pad(images, F::PadFuncOptions({radius, radius, radius, radius}).mode(torch::kReflect));
  const auto horizontal = kernel.view({1, 1, 1, -1}).expand({channels, 1, 1, -1});
  const auto vertical = kernel.view({1, 1, -1, 1}).expand({channels, 1, -1, 1});
  auto out = F::conv2d(padded, horizontal, F::Conv2dFuncOptions().groups(channels));
  return F::conv2d(out, vertical, F::Conv2dFuncOptions().groups(channels));
}

}  // namespace

torch::Tensor removal_baseline_images(const torch::Tensor& images, RemovalBaseline baseline,
                                      double blur_sigma) {
  TORCH_CHECK(images.dim() == 4, "removal baseline: expected images (B, C, H, W), got ",
              images.sizes());
  switch (baseline) {
    case RemovalBaseline::kZero:
      return torch::zeros_like(images);
    case RemovalBaseline::kMean:
      return images.mean({2, 3}, /*keepdim=*/true).expand_as(images).contiguous();
    case RemovalBaseline::kBlur:
      break;
  }
  const double sigma =
      blur_sigma > 0 ? blur_sigma
                     : 5.0 * static_cast<double>(std::min(images.size(2), images.size(3))) / 224.0;
  return gaussian_blur(images.to(torch::kFloat), sigma);
}

torch::Tensor cells_to_pixels(const torch::Tensor& cells, int64_t height, int64_t width) {
  TORCH_CHECK(cells.dim() == 3, "cells_to_pixels: expected (B, gh, gw), got ", cells.sizes());
  const int64_t gh = cells.size(1), gw = cells.size(2);
  TORCH_CHECK(height % gh == 0 && width % gw == 0, "cells_to_pixels: a ", gh, "x", gw,
              " grid does not tile ", height, "x", width, " pixels");
  return cells.unsqueeze(1).repeat_interleave(height / gh, 2).repeat_interleave(width / gw, 3);
}

torch::Tensor scaled_pixel_map(const torch::Tensor& maps, int64_t height, int64_t width) {
  TORCH_CHECK(maps.dim() == 3, "scaled_pixel_map: expected (B, gh, gw), got ", maps.sizes());
  const auto flat = maps.to(torch::kFloat).reshape({maps.size(0), -1});
  const auto low = std::get<0>(flat.min(1, true));
  const auto shifted = flat - low;
  const auto scaled = shifted / (std::get<0>(shifted.max(1, true)) + 1e-7);
  namespace F = torch::nn::functional;
  return F::interpolate(scaled.view({maps.size(0), 1, maps.size(1), maps.size(2)}),
                        F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{height, width})
                            .mode(torch::kBilinear)
                            .align_corners(false));
}

}  // namespace attnkit::vision
