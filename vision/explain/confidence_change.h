// vision/explain/confidence_change.h: pytorch-grad-cam's "confidence change when the image is
// multiplied by the map" and its drop / increase in confidence (after Chattopadhyay et al.,
// "Grad-CAM++", WACV 2018).
#pragma once

#include <torch/types.h>

#include "vision/explain/perturbation.h"

namespace attnkit::vision {

/// Per image: the target probability before and after multiplying the image (in the model's
/// input space) by its map, min-max scaled and resized bilinearly (scaled_pixel_map), as
/// pytorch-grad-cam's CamMultImageConfidenceChange with a softmax target.
struct ConfidenceChange {
  torch::Tensor before;  ///< (B)
  torch::Tensor after;   ///< (B)
  /// after - before (B): pytorch-grad-cam's CamMultImageConfidenceChange.
  torch::Tensor change() const { return after - before; }
  /// max(0, before - after) (B): its DropInConfidence (an absolute drop, not a percentage).
  torch::Tensor drop() const;
  /// 1 where after > before, else 0 (B): its IncreaseInConfidence.
  torch::Tensor increase() const;
};

/// images (B, C, H, W), maps (B, gh, gw), targets (B). `before` (B), the unperturbed target
/// probabilities, when the caller has them already (they do not depend on the map).
ConfidenceChange confidence_change(const ProbabilityFn& model, const torch::Tensor& images,
                                   const torch::Tensor& maps, const torch::Tensor& targets,
                                   int64_t batch_size, const torch::Tensor& before = {});

}  // namespace attnkit::vision
