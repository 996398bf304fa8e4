// vision/train/augment.h: batched training augmentation on image tensors: random crop with
// padding, horizontal flip, random erasing, and Mixup / CutMix with soft targets.
#pragma once

#include <torch/types.h>

namespace attnkit::vision {

struct AugmentOptions {
  int64_t crop_padding = 2;     ///< zero padding before a random crop back to H x W (0 = off)
  bool horizontal_flip = true;  ///< flip with probability 0.5
  /// Random erasing (Zhong et al. 2020): probability per image; area 2%-33% of the image, aspect
  /// ratio 0.3-3.3 (log-uniform), filled with normal noise as timm's mode 'pixel'.
  double erase_probability = 0.25;
  double mixup_alpha = 0.0;   ///< Mixup (Zhang et al. 2018) Beta(alpha, alpha); 0 = off
  double cutmix_alpha = 0.0;  ///< CutMix (Yun et al. 2019) Beta(alpha, alpha); 0 = off
  /// When both are on, the chance a batch uses CutMix rather than Mixup (timm switch_prob).
  double cutmix_probability = 0.5;
};

/// Geometric augmentation of pixels (B, C, H, W), any dtype, before normalisation so the padding
/// is black: crop with padding and flip. Returns a new tensor of the same shape and dtype.
torch::Tensor augment_geometry(const torch::Tensor& images, const AugmentOptions& options,
                               at::Generator& generator);

/// Random erasing on normalised images (B, C, H, W), in place.
void random_erase_(torch::Tensor& images, const AugmentOptions& options, at::Generator& generator);

/// Class targets (B) -> soft targets (B, K) with label smoothing: 1 - eps on the class, eps / K
/// spread over all classes (as PyTorch's CrossEntropyLoss(label_smoothing=eps)).
torch::Tensor smooth_targets(const torch::Tensor& labels, int64_t num_classes, double smoothing);

/// Mixup or CutMix on a batch (B, C, H, W) and its soft targets (B, K), in place: each image is
/// mixed with the batch in reverse order, targets mixed by the pixel fraction. No-op when both
/// alphas are 0.
void mix_batch_(torch::Tensor& images, torch::Tensor& targets, const AugmentOptions& options,
                at::Generator& generator);

/// Cross-entropy against soft targets: mean over the batch of -sum_k t_k log softmax(z)_k.
/// logits (B, K), targets (B, K) -> scalar.
torch::Tensor soft_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace attnkit::vision
