// apps/classifier_data.h: the --data argument of `attn train classifier` and `attn eval
// classifier`: "fashion-mnist" (Debian's idx files) or an image-folder root.
#pragma once

#include <string>

#include "vision/data/labeled_images.h"
#include "vision/image/preprocess.h"

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

}  // namespace attnkit::apps
