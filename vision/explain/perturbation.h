// vision/explain/perturbation.h: what the perturbation metrics share: a model seen as class
// probabilities, batched scoring of perturbed images, and the pixels that stand in for removed
// ones (blur, the image's mean, zero).
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>

namespace attnkit::vision {

/// A classifier seen as probabilities: images (B, C, H, W) -> (B, K). Called without gradients.
using ProbabilityFn = std::function<torch::Tensor(const torch::Tensor& images)>;

/// The probability of each image's target class, scored in batches of at most `batch_size`.
/// images (N, C, H, W), targets (N) -> (N) float.
torch::Tensor target_probabilities(const ProbabilityFn& model, const torch::Tensor& images,
                                   const torch::Tensor& targets, int64_t batch_size);

/// What replaces a removed pixel in deletion and insertion.
enum class RemovalBaseline {
  kBlur,  ///< the image blurred (RISE's insertion substrate): the pixel's blurred value
  kMean,  ///< the image's mean, per channel
  kZero,  ///< 0 in the model's input: the normalisation mean's colour for a normalised model
};

/// "blur" | "mean" | "zero"; throws std::invalid_argument naming the choices.
RemovalBaseline removal_baseline_from_string(const std::string& name);
std::string removal_baseline_name(RemovalBaseline baseline);

/// The image every pixel is taken from once removed. `blur_sigma` in pixels (blur only; <= 0:
/// 5 px per 224 px of the shorter side, RISE's sigma for 224-pixel images).
/// images (B, C, H, W) -> (B, C, H, W).
torch::Tensor removal_baseline_images(const torch::Tensor& images, RemovalBaseline baseline,
                                      double blur_sigma = 0.0);

/// Cell maps to pixel masks: each cell of a (B, gh, gw) grid covers an (H / gh) x (W / gw) block.
/// -> (B, 1, H, W), the cells' values repeated (nearest-neighbour upsampling).
torch::Tensor cells_to_pixels(const torch::Tensor& cells, int64_t height, int64_t width);

/// A map upsampled to the image as pytorch-grad-cam does for its metrics: min-max scaled per
/// image to [0, 1] (x - min) / (max - min + 1e-7), then resized bilinearly (half-pixel
/// centres, as cv2.resize). maps (B, gh, gw) -> (B, 1, H, W).
torch::Tensor scaled_pixel_map(const torch::Tensor& maps, int64_t height, int64_t width);

}  // namespace attnkit::vision
