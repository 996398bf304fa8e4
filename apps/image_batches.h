// apps/image_batches.h: the batch loop `attn classify` and `attn caption` share: load and
// preprocess every input, report the ones that fail, and hand on each batch of the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "apps/cli_common.h"

namespace at {
class Tensor;
}  // namespace at

namespace attnkit::apps {

/// One input as the reader thread left it.
struct DecodedImage {
  cv::Mat rgb;           ///< 8-bit RGB; empty when skipped or failed
  std::string error;     ///< why it could not be read (the message names the file), or empty
  bool skipped = false;  ///< the caller's `skip` asked for it to be left undecoded
};

/// Decodes `items` in order on its own thread, at most `budget_pixels` ahead of the consumer
/// (always at least one image, and up to `min_ahead` within four times the budget), so decoding
/// overlaps the caller's forward passes while a folder of large photos holds a bounded amount of
/// decoded pixels. The reader thread runs OpenCV only, no LibTorch, so it starts no OpenMP team
/// of its own to fight the forward pass for the cores.
/// Items with an `error` are passed on as failed; those `skip` names (videos) are passed on
/// undecoded.
class ImageReader {
 public:
  /// 24 megapixels: about 72 MB of RGB (four 6-megapixel photos, or 30,000 Fashion-MNIST items).
  static constexpr int64_t kDefaultBudgetPixels = 24'000'000;

  /// `min_ahead`: how many images the consumer takes at once (its batch size).
  ImageReader(const std::vector<InputItem>& items, size_t min_ahead,
              std::function<bool(const InputItem&)> skip = {},
              int64_t budget_pixels = kDefaultBudgetPixels);
  ~ImageReader();
  ImageReader(const ImageReader&) = delete;
  ImageReader& operator=(const ImageReader&) = delete;

  /// The next item, in input order; waits for the reader when it is behind. Rethrows anything
  /// the reader hit that is not a bad image (out of memory).
  DecodedImage next();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// RGB8 image and its path -> the model's input (C, H, W).
using PrepareImage = std::function<at::Tensor(const cv::Mat& rgb, const std::string& path)>;
/// A file that failed, and why.
using ReportError = std::function<void(const std::string& path, const std::string& message)>;
/// A batch of prepared images (B, C, H, W) and their paths.
using ProcessBatch =
    std::function<void(const at::Tensor& images, const std::vector<std::string>& paths)>;
/// `n` more inputs are done (failures included).
using Advance = std::function<void(int64_t n)>;

/// Walks `items` in groups of `batch_size`, decoding the images ahead of time on a reader thread
/// (a bounded number of pixels ahead) so decoding overlaps the forward pass; the callbacks all
/// run on the calling thread, in input order. Each usable item is read as RGB and turned into a
/// (C, H, W) tensor by `prepare(rgb, path)`; an item that was unusable from the start, or whose
/// reading or `prepare` throws vision::Error, goes to `on_error(path, message)` and the rest go
/// on. `on_batch(images (B, C, H, W), paths)` gets every group with at least one image, and
/// `on_advance(n)` the group's size (failures included) after it, for a progress bar.
void for_each_image_batch(const std::vector<InputItem>& items, size_t batch_size,
                          const PrepareImage& prepare, const ReportError& on_error,
                          const ProcessBatch& on_batch, const Advance& on_advance);

}  // namespace attnkit::apps
