// vision/models/patch_embed.cpp: the patch projection.
#include "vision/models/patch_embed.h"

#include <torch/torch.h>

namespace attnkit::vision {

PatchEmbedImpl::PatchEmbedImpl(PatchEmbedOptions options_) : options(std::move(options_)) {
  reset();
}

void PatchEmbedImpl::reset() {
  const int64_t p = options.patch_size();
  TORCH_CHECK(p > 0, "PatchEmbed: patch_size must be positive, got ", p);
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels(), options.dim(), p)
                                    .stride(p)
                                    .bias(options.bias())));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& images) {
  const int64_t p = options.patch_size();
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options.in_channels(),
              "PatchEmbed: expected images (B, ", options.in_channels(), ", H, W), got ",
              images.sizes());
  TORCH_CHECK(images.size(2) % p == 0 && images.size(3) % p == 0, "PatchEmbed: input size ",
              images.size(2), "x", images.size(3), " is not a multiple of the patch size ", p);
  return proj(images).flatten(2).transpose(1, 2);  // (B, D, gh, gw) -> (B, gh*gw, D)
}

}  // namespace attnkit::vision
