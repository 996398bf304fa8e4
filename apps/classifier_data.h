// apps/classifier_data.h: the --data argument of `attn train classifier` and `attn eval
// classifier` ("fashion-mnist", Debian's idx files, or an image-folder root), and what the
// classifier commands share: the demo model's domain warning and the --tta option.
#pragma once

#include <string>
#include <vector>

#include "vision/checkpoint/model_file.h"
#include "vision/data/labeled_images.h"
#include "vision/image/preprocess_config.h"
#include "vision/models/test_time_augmentation.h"

namespace attnkit::apps {

/// Fashion-MNIST's normalisation (its training pixels' mean and std on [0, 1]).
vision::PreprocessConfig fashion_mnist_preprocess();

/// "fashion-mnist" -> that split ("train" or "test") read from `fashion_dir`; anything else is an
/// image-folder root (split ignored) resized per `preprocess`. Skipped files are printed as
/// warnings for `command`. Throws vision::DataError.
vision::LabeledImages load_classifier_data(const std::string& spec, const std::string& split,
                                           const std::string& fashion_dir,
                                           const vision::PreprocessConfig& preprocess,
                                           const std::string& command);

/// Re-indexes an image folder's labels onto the model's (matched by name) when the model has
/// labels; throws vision::DataError naming `data` and the first folder that is not a label.
void relabel_with_model_labels(vision::LabeledImages& dataset,
                               const std::vector<std::string>& model_labels,
                               const std::string& data);

/// For a model that `attn train classifier` made on Fashion-MNIST (its file records the domain),
/// the warning to print once when it is given an image that is not a 28x28 item: its answers
/// for photos are meaningless. "" for other models and for 28x28 images.
std::string fashion_domain_warning(const vision::ModelInfo& info, int width, int height,
                                   const std::string& path);

/// --tta's help text, the same for `attn classify` and `attn eval classifier`.
extern const char* const kTtaHelp;

/// --tta's value ("none" | "flip"); throws UsageError naming the option otherwise.
vision::TestTimeAugmentation parse_tta_option(const std::string& value);

}  // namespace attnkit::apps
