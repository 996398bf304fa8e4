// apps/image_batches.h: the batch loop `attn classify` and `attn caption` share: load and
// preprocess every input, report the ones that fail, and hand on each batch of the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "apps/cli_common.h"

namespace at {
class Tensor;
}  // namespace at
namespace cv {
class Mat;
}  // namespace cv

namespace attnkit::apps {

/// Walks `items` in groups of `batch_size`, decoding the images ahead of time on a reader thread
/// (a bounded number of pixels ahead) so decoding overlaps the forward pass; the callbacks all
/// run on the calling thread, in input order. Each usable item is read as RGB and turned into a
/// (C, H, W) tensor by `prepare(rgb, path)`; an item that was unusable from the start, or whose
/// reading or `prepare` throws vision::Error, goes to `on_error(path, message)` and the rest go
/// on. `on_batch(images (B, C, H, W), paths)` gets every group with at least one image, and
/// `on_advance(n)` the group's size (failures included) after it, for a progress bar.
void for_each_image_batch(
    const std::vector<InputItem>& items, size_t batch_size,
    const std::function<at::Tensor(const cv::Mat& rgb, const std::string& path)>& prepare,
    const std::function<void(const std::string& path, const std::string& message)>& on_error,
    const std::function<void(const at::Tensor& images, const std::vector<std::string>& paths)>&
        on_batch,
    const std::function<void(int64_t n)>& on_advance);

}  // namespace attnkit::apps
