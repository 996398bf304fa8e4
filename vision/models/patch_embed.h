// vision/models/patch_embed.h: image -> a grid of patch tokens (a strided convolution, optionally
// after a small convolutional stem).
#pragma once

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace attnkit::vision {

/// One stem stage: Conv2d 3x3 (no bias, padding 1), BatchNorm2d, ReLU. Stride 2 halves H and W.
class StemConvImpl : public torch::nn::Module {
 public:
  StemConvImpl(int64_t in_channels, int64_t out_channels, int64_t stride = 2);
  /// (B, C_in, H, W) -> (B, C_out, H/s, W/s) for H, W divisible by the stride s.
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(StemConv);

struct PatchEmbedOptions {
  PatchEmbedOptions(int64_t in_channels, int64_t dim, int64_t patch_size)
      : in_channels_(in_channels), dim_(dim), patch_size_(patch_size) {}
  TORCH_ARG(int64_t, in_channels);  ///< C
  TORCH_ARG(int64_t, dim);          ///< D
  TORCH_ARG(int64_t, patch_size);   ///< P: the total stride from pixels to tokens
  TORCH_ARG(bool, bias) = true;
  /// Output channels of each stem stage; P must be divisible by the stem's total stride.
  TORCH_ARG(std::vector<int64_t>, stem_channels) = {};
  /// Stride (1 or 2) of each stem stage; empty: 2 for every stage.
  TORCH_ARG(std::vector<int64_t>, stem_strides) = {};
};

/// [stem] + Conv2d(C', D, kernel P', stride P') flattened to tokens in row-major grid order, with
/// P' = P / (the stem's total stride). The submodule `proj` matches timm's `patch_embed.proj`;
/// the stem stages are `stem.<i>.conv` and `stem.<i>.bn`.
class PatchEmbedImpl : public torch::nn::Module {
 public:
  explicit PatchEmbedImpl(PatchEmbedOptions options);
  void reset();
  /// images (B, C, H, W) with H, W multiples of P -> tokens (B, (H/P)*(W/P), D).
  torch::Tensor forward(const torch::Tensor& images);

  PatchEmbedOptions options;
  torch::nn::ModuleList stem{nullptr};
  torch::nn::Conv2d proj{nullptr};

 private:
  std::vector<StemConv> stem_refs_;
};
TORCH_MODULE(PatchEmbed);

}  // namespace attnkit::vision
