// apps/classifier_data.cpp: choosing and loading a classification dataset; the classifier
// commands' shared warning and --tta option.
#include "apps/classifier_data.h"

#include <algorithm>
#include <stdexcept>

#include <torch/torch.h>

#include "apps/cli_common.h"
#include "vision/data/fashion_mnist.h"
#include "vision/data/image_folder.h"
#include "vision/errors.h"

namespace attnkit::apps {

vision::PreprocessConfig fashion_mnist_preprocess() {
  vision::PreprocessConfig config;
  config.height = config.width = 28;
  config.channels = 1;
  config.crop_pct = 1.0;
  config.crop_mode = vision::CropMode::kSquash;
  config.interpolation = vision::Interpolation::kBilinear;
  // Mean and standard deviation of the 60,000 training images' pixels on [0, 1].
  config.mean = {0.2860, 0.2860, 0.2860};
  config.std = {0.3530, 0.3530, 0.3530};
  return config;
}

vision::LabeledImages load_classifier_data(const std::string& spec, const std::string& split,
                                           const std::string& fashion_dir,
                                           const vision::PreprocessConfig& preprocess,
                                           const std::string& command) {
  if (spec == "fashion-mnist") return vision::load_fashion_mnist(fashion_dir, split);
  auto data = vision::load_image_folder(spec, preprocess);
  for (const auto& skipped : data.skipped) print_warning(command, "skipped " + skipped.error);
  return data;
}

void relabel_with_model_labels(vision::LabeledImages& dataset,
                               const std::vector<std::string>& model_labels,
                               const std::string& data) {
  if (model_labels.empty()) return;
  std::vector<int64_t> mapping;
  for (const auto& name : dataset.classes) {
    const auto it = std::find(model_labels.begin(), model_labels.end(), name);
    if (it == model_labels.end()) {
      throw vision::DataError(data + ": class folder '" + name + "' is not one of the model's " +
                              std::to_string(model_labels.size()) + " labels");
    }
    mapping.push_back(it - model_labels.begin());
  }
  dataset.labels = torch::tensor(mapping).index_select(0, dataset.labels);
}

std::string fashion_domain_warning(const vision::ModelInfo& info, int width, int height,
                                   const std::string& path) {
  const auto domain = info.extra.find("attnkit.domain");
  if (domain == info.extra.end() || domain->second != "fashion-mnist") return "";
  if (width == 28 && height == 28) return "";
  return path + " is a " + std::to_string(width) + "x" + std::to_string(height) +
         " image, but this demo model only knows the 10 Fashion-MNIST clothing classes (28x28 "
         "grey items on black): answers for photos are meaningless. For photos, import an "
         "ImageNet ViT (README, 'Run the public pretrained ViTs') and pass --model.";
}

const char* const kTtaHelp =
    "test-time augmentation: none, or flip (average each image's and its mirror image's\n"
    "class probabilities; twice the compute)";

vision::TestTimeAugmentation parse_tta_option(const std::string& value) {
  try {
    return vision::test_time_augmentation_from_string(value);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--tta: ") + e.what());
  }
}

}  // namespace attnkit::apps
