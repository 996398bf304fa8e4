// vision/models/test_time_augmentation.cpp: flip test-time augmentation for ViT classifiers.
#include "vision/models/test_time_augmentation.h"

#include <cmath>
#include <stdexcept>

#include <torch/torch.h>

namespace attnkit::vision {

TestTimeAugmentation test_time_augmentation_from_string(const std::string& name) {
  if (name == "none") return TestTimeAugmentation::kNone;
  if (name == "flip") return TestTimeAugmentation::kFlip;
  throw std::invalid_argument("unknown test-time augmentation '" + name +
                              "' (expected none or flip)");
}

std::string to_string(TestTimeAugmentation tta) {
  return tta == TestTimeAugmentation::kFlip ? "flip" : "none";
}

torch::Tensor class_log_probabilities(VisionTransformer& model, const torch::Tensor& images,
                                      TestTimeAugmentation tta) {
  TORCH_CHECK(images.dim() == 4, "class_log_probabilities: expected images (B, C, H, W), got ",
              images.sizes());
  if (tta == TestTimeAugmentation::kNone) {
    return torch::log_softmax(model->forward(images).to(torch::kFloat), 1);
  }
  // One batch of 2B: the mirrors ride along with the originals.
  const auto both = torch::cat({images, images.flip({3})}, 0);
  const auto all = torch::log_softmax(model->forward(both).to(torch::kFloat), 1);
  const int64_t b = images.size(0);
  return torch::logsumexp(torch::stack({all.narrow(0, 0, b), all.narrow(0, b, b)}), 0) -
         std::log(2.0);
}

}  // namespace attnkit::vision
