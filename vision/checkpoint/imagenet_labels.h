// vision/checkpoint/imagenet_labels.h: the ImageNet-1k class names, for checkpoints that carry
// none.
#pragma once

#include <string>
#include <vector>

namespace attnkit::vision {

/// The 1,000 ImageNet-1k class names in the standard index order (as torchvision's
/// `_IMAGENET_CATEGORIES` lists them), e.g. index 0 = "tench", 281 = "tabby".
const std::vector<std::string>& imagenet1k_labels();

}  // namespace attnkit::vision
