// vision/train/augment.cpp: the augmentations, drawn from an explicit generator so a training
// run (and its resumption) is reproducible batch by batch.
#include "vision/train/augment.h"

#include <cmath>

#include <torch/torch.h>

namespace attnkit::vision {
namespace {

double uniform(at::Generator& generator, double low = 0.0, double high = 1.0) {
  return torch::empty({1}, torch::kDouble).uniform_(low, high, generator).item<double>();
}

int64_t random_int(at::Generator& generator, int64_t high_exclusive) {
  return torch::randint(high_exclusive, {1}, generator, torch::kLong).item<int64_t>();
}

/// A Beta(alpha, alpha) sample as X / (X + Y) with X, Y ~ Gamma(alpha).
double beta(at::Generator& generator, double alpha) {
  auto concentration = torch::full({2}, alpha, torch::kDouble);
  auto gammas = at::_standard_gamma(concentration, generator);
  const double x = gammas[0].item<double>();
  const double y = gammas[1].item<double>();
  return x + y > 0 ? x / (x + y) : 0.5;
}

}  // namespace

torch::Tensor augment_geometry(const torch::Tensor& images, const AugmentOptions& options,
                               at::Generator& generator) {
  TORCH_CHECK(images.dim() == 4, "augment_geometry: expected (B, C, H, W), got ", images.sizes());
  const int64_t batch = images.size(0), height = images.size(2), width = images.size(3);
  const int64_t pad = options.crop_padding;
  auto padded = pad > 0 ? torch::constant_pad_nd(images, {pad, pad, pad, pad}, 0.0) : images;
  auto out = torch::empty_like(images);
  auto flips = torch::rand({batch}, generator) < 0.5;
  auto offsets = torch::randint(2 * pad + 1, {batch, 2}, generator, torch::kLong);
  auto flips_a = flips.accessor<bool, 1>();
  auto offsets_a = offsets.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    auto crop = padded[b].narrow(1, offsets_a[b][0], height).narrow(2, offsets_a[b][1], width);
    if (options.horizontal_flip && flips_a[b]) crop = crop.flip({2});
    out[b].copy_(crop);
  }
  return out;
}

void random_erase_(torch::Tensor& images, const AugmentOptions& options, at::Generator& generator) {
  if (options.erase_probability <= 0) return;
  const int64_t batch = images.size(0), height = images.size(2), width = images.size(3);
  const double area = static_cast<double>(height * width);
  for (int64_t b = 0; b < batch; ++b) {
    if (uniform(generator) >= options.erase_probability) continue;
    // timm's RandomErasing: up to 10 attempts to find a box that fits.
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target = area * uniform(generator, 0.02, 1.0 / 3.0);
      const double aspect = std::exp(uniform(generator, std::log(0.3), std::log(1.0 / 0.3)));
      const auto h = static_cast<int64_t>(std::lround(std::sqrt(target * aspect)));
      const auto w = static_cast<int64_t>(std::lround(std::sqrt(target / aspect)));
      if (h < 1 || w < 1 || h >= height || w >= width) continue;
      const int64_t top = random_int(generator, height - h + 1);
      const int64_t left = random_int(generator, width - w + 1);
      images[b].narrow(1, top, h).narrow(2, left, w).normal_(0.0, 1.0, generator);
      break;
    }
  }
}

torch::Tensor smooth_targets(const torch::Tensor& labels, int64_t num_classes, double smoothing) {
  auto targets = torch::full({labels.size(0), num_classes}, smoothing / num_classes);
  targets.scatter_add_(1, labels.view({-1, 1}), torch::full({labels.size(0), 1}, 1.0 - smoothing));
  return targets;
}

void mix_batch_(torch::Tensor& images, torch::Tensor& targets, const AugmentOptions& options,
                at::Generator& generator) {
  const bool mixup = options.mixup_alpha > 0, cutmix = options.cutmix_alpha > 0;
  if (!mixup && !cutmix) return;
  const bool use_cutmix = cutmix && (!mixup || uniform(generator) < options.cutmix_probability);
  const auto flipped_images = images.flip({0});
  const auto flipped_targets = targets.flip({0});
  double keep = 1.0;
  if (use_cutmix) {
    const int64_t height = images.size(2), width = images.size(3);
    const double lambda = beta(generator, options.cutmix_alpha);
    const double cut = std::sqrt(1.0 - lambda);
    const auto cut_h = static_cast<int64_t>(cut * height),
               cut_w = static_cast<int64_t>(cut * width);
    const int64_t cy = random_int(generator, height), cx = random_int(generator, width);
    const int64_t y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, height);
    const int64_t y1 = std::clamp<int64_t>(cy + cut_h / 2, 0, height);
    const int64_t x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, width);
    const int64_t x1 = std::clamp<int64_t>(cx + cut_w / 2, 0, width);
    if (y1 > y0 && x1 > x0) {
      images.narrow(2, y0, y1 - y0)
          .narrow(3, x0, x1 - x0)
          .copy_(flipped_images.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0));
    }
    // The label weight is the pixel fraction actually kept (timm's correct_lam).
    keep = 1.0 - static_cast<double>((y1 - y0) * (x1 - x0)) / static_cast<double>(height * width);
  } else {
    keep = beta(generator, options.mixup_alpha);
    images.mul_(keep).add_(flipped_images, 1.0 - keep);
  }
  targets.mul_(keep).add_(flipped_targets, 1.0 - keep);
}

torch::Tensor soft_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  TORCH_CHECK(logits.sizes() == targets.sizes(), "soft_cross_entropy: logits ", logits.sizes(),
              " and targets ", targets.sizes(), " differ");
  return -(targets * torch::log_softmax(logits.to(torch::kFloat), 1)).sum(1).mean();
}

}  // namespace attnkit::vision
