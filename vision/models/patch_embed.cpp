// vision/models/patch_embed.cpp: the patch projection and the optional convolutional stem.
#include "vision/models/patch_embed.h"

#include <torch/torch.h>

#include "vision/models/replica_batch_norm.h"
#include "vision/models/vit_config.h"

namespace attnkit::vision {

StemConvImpl::StemConvImpl(int64_t in_channels, int64_t out_channels, int64_t stride) {
  TORCH_CHECK(stride == 1 || stride == 2, "StemConv: stride must be 1 or 2, got ", stride);
  conv = register_module("conv",
                         torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 3)
                                               .stride(stride)
                                               .padding(1)
                                               .bias(false)));
  bn = register_module("bn", torch::nn::BatchNorm2d(out_channels));
}

torch::Tensor StemConvImpl::forward(const torch::Tensor& x) {
  // In data-parallel training the statistics cover every replica's images: the batch one
  // process would see.
  return torch::relu(replica_batch_norm(bn, conv(x)));
}

PatchEmbedImpl::PatchEmbedImpl(PatchEmbedOptions options_) : options(std::move(options_)) {
  reset();
}

void PatchEmbedImpl::reset() {
  const int64_t p = options.patch_size();
  TORCH_CHECK(p > 0, "PatchEmbed: patch_size must be positive, got ", p);
  const auto& stages = options.stem_channels();
  const auto& strides = options.stem_strides();
  TORCH_CHECK(strides.empty() || strides.size() == stages.size(), "PatchEmbed: expected ",
              stages.size(), " stem strides, got ", strides.size());
  const int64_t stem_stride = total_stem_stride(stages.size(), strides);
  TORCH_CHECK(p % stem_stride == 0, "PatchEmbed: patch size ", p,
              " is not divisible by the stem's ", "stride ", stem_stride);
  int64_t channels = options.in_channels();
  stem_refs_.clear();
  if (!stages.empty()) {
    stem = register_module("stem", torch::nn::ModuleList());
    for (size_t i = 0; i < stages.size(); ++i) {
      const int64_t out_channels = stages[i];
      StemConv stage(channels, out_channels, stem_stage_stride(strides, i));
      stem->push_back(stage);
      stem_refs_.push_back(stage);
      channels = out_channels;
    }
  }
  const int64_t kernel = p / stem_stride;
  proj = register_module("proj",
                         torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, options.dim(), kernel)
                                               .stride(kernel)
                                               .bias(options.bias())));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& images) {
  const int64_t p = options.patch_size();
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options.in_channels(),
              "PatchEmbed: expected images (B, ", options.in_channels(), ", H, W), got ",
              images.sizes());
  TORCH_CHECK(images.size(2) % p == 0 && images.size(3) % p == 0, "PatchEmbed: input size ",
              images.size(2), "x", images.size(3), " is not a multiple of the patch size ", p);
  auto x = images;
  for (auto& stage : stem_refs_) x = stage->forward(x);
  return proj(x).flatten(2).transpose(1, 2);  // (B, D, gh, gw) -> (B, gh*gw, D)
}

}  // namespace attnkit::vision
