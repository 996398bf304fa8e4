// vision/explain/confidence_change.cpp: the image-times-map confidence metrics.
#include "vision/explain/confidence_change.h"

#include <torch/torch.h>

namespace attnkit::vision {

torch::Tensor ConfidenceChange::drop() const { return (before - after).clamp_min(0.0); }

torch::Tensor ConfidenceChange::increase() const { return after.gt(before).to(torch::kFloat); }

ConfidenceChange confidence_change(const ProbabilityFn& model, const torch::Tensor& images,
                                   const torch::Tensor& maps, const torch::Tensor& targets,
                                   int64_t batch_size, const torch::Tensor& before) {
  TORCH_CHECK(images.dim() == 4 && maps.dim() == 3 && maps.size(0) == images.size(0),
              "confidence_change: expected images (B, C, H, W) and maps (B, gh, gw), got ",
              images.sizes(), " and ", maps.sizes());
  const auto input = images.to(torch::kFloat);
  const auto weights = scaled_pixel_map(maps, images.size(2), images.size(3));
  ConfidenceChange out;
  out.before = before.defined() ? before : target_probabilities(model, input, targets, batch_size);
  out.after = target_probabilities(model, input * weights, targets, batch_size);
  return out;
}

}  // namespace attnkit::vision
