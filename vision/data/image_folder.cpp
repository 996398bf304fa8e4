// vision/data/image_folder.cpp: root/<class>/<image> into memory, skipping unreadable files.
#include "vision/data/image_folder.h"

#include <algorithm>
#include <filesystem>

#include <torch/torch.h>

#include "vision/errors.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"

namespace attnkit::vision {

LabeledImages load_image_folder(const std::string& root, const PreprocessConfig& config) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    throw DataError(root + ": not a directory (expected root/<class>/<image> folders)");
  }
  std::vector<std::string> class_dirs;
  for (const auto& entry : fs::directory_iterator(root)) {
    const auto name = entry.path().filename().string();
    if (entry.is_directory() && !name.empty() && name[0] != '.') class_dirs.push_back(name);
  }
  std::sort(class_dirs.begin(), class_dirs.end());

  LabeledImages out;
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  for (const auto& class_name : class_dirs) {
    std::vector<std::string> files;
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(root) / class_name)) {
      const auto name = entry.path().filename().string();
      if (entry.is_regular_file() && name[0] != '.' && has_image_extension(name)) {
        files.push_back(entry.path().string());
      }
    }
    if (files.empty()) continue;  // torchvision ignores empty class folders too
    std::sort(files.begin(), files.end());
    const auto label = static_cast<int64_t>(out.classes.size());
    out.classes.push_back(class_name);
    for (const auto& file : files) {
      try {
        images.push_back(resize_crop_image(load_image_rgb(file), config));
        labels.push_back(label);
      } catch (const ImageError& e) {
        out.skipped.push_back({file, e.what()});
      }
    }
  }
  if (images.empty()) {
    throw DataError(
        root + ": no readable images in root/<class>/ folders" +
        (out.skipped.empty() ? "" : " (first problem: " + out.skipped.front().error + ")"));
  }
  out.images = torch::stack(images);
  out.labels = torch::tensor(labels, torch::kLong);
  return out;
}

}  // namespace attnkit::vision
