// vision/api/classifier.cpp: attnkit::Classifier: a ViT model file behind cv::Mat in, classes
// and maps out.
#include <stdexcept>

#include <torch/torch.h>

#include "vision/api/api_helpers.h"
#include "vision/api/attnkit.h"
#include "vision/checkpoint/model_file.h"
#include "vision/cpu_features.h"
#include "vision/models/inference_precision.h"
#include "vision/models/test_time_augmentation.h"
#include "vision/models/vit_explain.h"

namespace attnkit {

struct Classifier::Impl {
  vision::LoadedViT vit;

  /// `caller` names the call in errors ("classify", "explain").
  torch::Tensor batch(const std::vector<cv::Mat>& images, const std::string& caller) const {
    std::vector<torch::Tensor> inputs;
    inputs.reserve(images.size());
    for (size_t i = 0; i < images.size(); ++i) {
      const auto rgb = api_detail::as_rgb8(images[i], caller + ": image " + std::to_string(i));
      inputs.push_back(vision::preprocess_image(rgb, vit.info.preprocess));
    }
    return torch::stack(inputs);
  }
};

Classifier::Classifier(const std::string& model_path, const LoadOptions& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->vit = vision::load_vit(model_path);
  if (impl_->vit.config.num_classes == 0) {
    throw vision::CheckpointError(model_path +
                                  ": the model has no classifier head (a feature "
                                  "extractor): nothing to classify");
  }
  vision::apply_inference_precision(
      *impl_->vit.model,
      vision::choose_inference_precision(options.precision, vision::cpu_features()));
}

Classifier::~Classifier() = default;
Classifier::Classifier(Classifier&&) noexcept = default;
Classifier& Classifier::operator=(Classifier&&) noexcept = default;

std::vector<Prediction> Classifier::classify(const cv::Mat& rgb, int k) const {
  return classify(std::vector<cv::Mat>{rgb}, k).front();
}

std::vector<std::vector<Prediction>> Classifier::classify(const std::vector<cv::Mat>& rgbs,
                                                          int k) const {
  if (k < 1)
    throw std::invalid_argument("classify: k must be at least 1, got " + std::to_string(k));
  if (rgbs.empty()) return {};
  c10::InferenceMode inference;
  const auto images = impl_->batch(rgbs, "classify");
  const auto probabilities =
      vision::class_log_probabilities(impl_->vit.model, images, vision::TestTimeAugmentation::kNone)
          .exp();
  const auto top = std::min<int64_t>(k, probabilities.size(1));
  const auto [values, indices] = probabilities.topk(top, 1);
  std::vector<std::vector<Prediction>> out(rgbs.size());
  for (size_t b = 0; b < rgbs.size(); ++b) {
    for (int64_t j = 0; j < top; ++j) {
      const auto index = indices[b][j].item<int64_t>();
      out[b].push_back(
          {index, vision::class_label(impl_->vit.info, index), values[b][j].item<double>()});
    }
  }
  return out;
}

AttentionMap Classifier::explain(const cv::Mat& rgb, const std::string& method,
                                 int64_t target_class) const {
  vision::ExplainOptions options;
  options.method = vision::map_method_from_string(method);
  if (target_class < -1) {
    throw std::invalid_argument("explain: target_class must be a class index or -1 (top-1), got " +
                                std::to_string(target_class));
  }
  options.target_class = target_class;
  const auto explanation =
      vision::explain_vit(impl_->vit.model, impl_->batch({rgb}, "explain"), options);
  AttentionMap map;
  map.grid = api_detail::grid_to_mat(explanation.maps[0][0]);
  map.method = vision::map_method_name(options.method);
  if (vision::is_class_specific(options.method)) {
    map.class_index = explanation.classes[0].item<int64_t>();
  }
  return map;
}

cv::Mat Classifier::overlay(const cv::Mat& rgb, const AttentionMap& map,
                            const OverlayOptions& options) const {
  return api_detail::draw_grid(api_detail::as_rgb8(rgb, "overlay"),
                               api_detail::mat_to_grid(map.grid, "overlay: map.grid"),
                               impl_->vit.info.preprocess, options);
}

const std::vector<std::string>& Classifier::labels() const { return impl_->vit.info.labels; }

int64_t Classifier::num_classes() const { return impl_->vit.config.num_classes; }

}  // namespace attnkit
