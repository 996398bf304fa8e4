// vision/train/classification_metrics.cpp: batched evaluation without autograd.
#include "vision/train/classification_metrics.h"

#include <torch/torch.h>

#include "vision/image/preprocess.h"
#include "vision/models/eval_mode_guard.h"

namespace attnkit::vision {

ClassificationMetrics evaluate_classifier(VisionTransformer& model, const LabeledImages& data,
                                          const PreprocessConfig& preprocess, int64_t batch_size,
                                          const std::function<void(int64_t)>& on_batch,
                                          TestTimeAugmentation tta) {
  TORCH_CHECK(batch_size > 0, "evaluate_classifier: batch_size must be positive, got ", batch_size);
  const int64_t classes = static_cast<int64_t>(data.classes.size());
  TORCH_CHECK(model->config().num_classes == classes, "evaluate_classifier: the model has ",
              model->config().num_classes, " classes, the dataset ", classes);
  EvalModeGuard eval_mode(*model);
  ClassificationMetrics metrics;
  metrics.count = data.size();
  metrics.confusion = torch::zeros({classes, classes}, torch::kLong);
  int64_t top1 = 0, top5 = 0;
  double loss_sum = 0;
  {
    torch::NoGradGuard no_grad;
    for (int64_t start = 0; start < data.size(); start += batch_size) {
      const int64_t n = std::min(batch_size, data.size() - start);
      auto images = normalize_pixels(data.images.narrow(0, start, n), preprocess);
      auto labels = data.labels.narrow(0, start, n);
      auto logits = class_log_probabilities(model, images, tta);
      loss_sum += torch::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>();
      auto top = std::get<1>(logits.topk(std::min<int64_t>(5, classes), 1));
      auto predicted = top.select(1, 0);
      top1 += predicted.eq(labels).sum().item<int64_t>();
      top5 += top.eq(labels.view({-1, 1})).any(1).sum().item<int64_t>();
      metrics.confusion.view({-1}).index_add_(0, labels * classes + predicted,
                                              torch::ones({n}, torch::kLong));
      if (on_batch) on_batch(start + n);
    }
  }
  if (metrics.count > 0) {
    metrics.top1 = static_cast<double>(top1) / metrics.count;
    metrics.top5 = static_cast<double>(top5) / metrics.count;
    metrics.loss = loss_sum / metrics.count;
  }
  return metrics;
}

}  // namespace attnkit::vision
