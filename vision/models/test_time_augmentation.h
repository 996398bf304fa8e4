// vision/models/test_time_augmentation.h: class scores of a ViT classifier, optionally averaged
// over the image and its mirror image (horizontal-flip test-time augmentation).
#pragma once

#include <string>

#include <torch/types.h>

#include "vision/models/vit.h"

namespace attnkit::vision {

enum class TestTimeAugmentation {
  kNone,  ///< one forward pass
  kFlip,  ///< the mean of the image's and its left-right mirror's class probabilities
};

/// "none" | "flip"; throws std::invalid_argument naming the accepted values.
TestTimeAugmentation test_time_augmentation_from_string(const std::string& name);
std::string to_string(TestTimeAugmentation tta);

/// Log class probabilities (B, K) for normalised images (B, C, H, W): log_softmax of the logits,
/// or with kFlip log(0.5 p(x) + 0.5 p(mirror(x))). Rows are valid logits (their softmax is the
/// probabilities), so top-k and cross-entropy work on them unchanged. Runs in the caller's
/// grad mode and train/eval mode.
torch::Tensor class_log_probabilities(VisionTransformer& model, const torch::Tensor& images,
                                      TestTimeAugmentation tta);

}  // namespace attnkit::vision
