// vision/train/classification_metrics.h: top-1 / top-5 accuracy, loss and the confusion matrix
// of a ViT classifier on an in-memory dataset.
#pragma once

#include <functional>

#include <torch/types.h>

#include "vision/data/labeled_images.h"
#include "vision/image/preprocess_config.h"
#include "vision/models/test_time_augmentation.h"
#include "vision/models/vit.h"

namespace attnkit::vision {

struct ClassificationMetrics {
  int64_t count = 0;
  double top1 = 0;          ///< fraction in [0, 1]
  double top5 = 0;          ///< fraction; equals 1 when there are at most 5 classes
  double loss = 0;          ///< mean cross-entropy (no smoothing)
  torch::Tensor confusion;  ///< (K, K) int64: rows = true class, columns = predicted
};

/// Runs `model` (switched to eval mode, restored afterwards) over `data`, normalising the pixels
/// as `preprocess` says, with test-time augmentation `tta`. `on_batch(done)` reports progress
/// after each batch.
ClassificationMetrics evaluate_classifier(VisionTransformer& model, const LabeledImages& data,
                                          const PreprocessConfig& preprocess, int64_t batch_size,
                                          const std::function<void(int64_t)>& on_batch = {},
                                          TestTimeAugmentation tta = TestTimeAugmentation::kNone);

}  // namespace attnkit::vision
