// apps/image_batches.cpp: load, preprocess and batch the inputs of classify and caption.
#include "apps/image_batches.h"

#include <algorithm>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "vision/errors.h"
#include "vision/image/image_io.h"

namespace attnkit::apps {

void for_each_image_batch(
    const std::vector<InputItem>& items, size_t batch_size,
    const std::function<at::Tensor(const cv::Mat& rgb, const std::string& path)>& prepare,
    const std::function<void(const std::string& path, const std::string& message)>& on_error,
    const std::function<void(const at::Tensor& images, const std::vector<std::string>& paths)>&
        on_batch,
    const std::function<void(int64_t n)>& on_advance) {
  batch_size = std::max<size_t>(batch_size, 1);
  for (size_t start = 0; start < items.size(); start += batch_size) {
    const size_t end = std::min(items.size(), start + batch_size);
    std::vector<torch::Tensor> images;
    std::vector<std::string> paths;
    for (size_t i = start; i < end; ++i) {
      if (!items[i].error.empty()) {
        on_error(items[i].path, items[i].error);
        continue;
      }
      try {
        images.push_back(prepare(vision::load_image_rgb(items[i].path), items[i].path));
        paths.push_back(items[i].path);
      } catch (const vision::Error& e) {
        on_error(items[i].path, e.what());
      }
    }
    if (!images.empty()) on_batch(torch::stack(images), paths);
    on_advance(static_cast<int64_t>(end - start));
  }
}

}  // namespace attnkit::apps
