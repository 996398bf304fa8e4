// vision/models/patch_embed.h: image -> a grid of patch tokens (one strided convolution).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace attnkit::vision {

struct PatchEmbedOptions {
  PatchEmbedOptions(int64_t in_channels, int64_t dim, int64_t patch_size)
      : in_channels_(in_channels), dim_(dim), patch_size_(patch_size) {}
  TORCH_ARG(int64_t, in_channels);  ///< C
  TORCH_ARG(int64_t, dim);          ///< D
  TORCH_ARG(int64_t, patch_size);   ///< P: square, non-overlapping patches
  TORCH_ARG(bool, bias) = true;
};

/// Conv2d(C, D, kernel P, stride P) flattened to tokens in row-major grid order. The submodule
/// `proj` matches timm's `patch_embed.proj`.
class PatchEmbedImpl : public torch::nn::Module {
 public:
  explicit PatchEmbedImpl(PatchEmbedOptions options);
  void reset();
  /// images (B, C, H, W) with H, W multiples of P -> tokens (B, (H/P)*(W/P), D).
  torch::Tensor forward(const torch::Tensor& images);

  PatchEmbedOptions options;
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

}  // namespace attnkit::vision
