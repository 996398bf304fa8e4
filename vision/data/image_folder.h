// vision/data/image_folder.h: a classification dataset laid out as root/<class>/<image>
// (torchvision's ImageFolder convention), decoded and resized into memory.
#pragma once

#include <string>

#include "vision/data/labeled_images.h"
#include "vision/image/preprocess_config.h"

namespace attnkit::vision {

/// Loads every image under root/<class>/ (classes = sub-directory names, sorted; images found
/// recursively by extension, sorted) and resizes it to config.height x config.width (short side
/// resized and centre-cropped as `config` says, PIL-exact), as config.channels channels.
/// Unreadable images go to `skipped` with the reason; throws DataError when `root` is not a
/// directory or has no class directory with an image.
LabeledImages load_image_folder(const std::string& root, const PreprocessConfig& config);

}  // namespace attnkit::vision
