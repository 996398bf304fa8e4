// vision/api/api_helpers.h: what the embedding API's classes share: pixel checks, grids between
// cv::Mat and tensors, and drawing a grid over an image. Internal: not installed as API.
#pragma once

#include <string>

#include <torch/types.h>
#include <opencv2/core/mat.hpp>

#include "vision/api/attnkit.h"
#include "vision/image/preprocess.h"

namespace attnkit::api_detail {

/// `image` as 8-bit RGB: CV_8UC3 as it is, CV_8UC1 expanded. Throws std::invalid_argument
/// naming `what` for an empty image or another pixel type.
cv::Mat as_rgb8(const cv::Mat& image, const std::string& what);

/// A (gh, gw) grid tensor as a CV_32F matrix that owns its values.
cv::Mat grid_to_mat(const torch::Tensor& grid);

/// A CV_32F matrix as a (rows, cols) float tensor that owns its values. Throws
/// std::invalid_argument naming `what` for an empty matrix or another type.
torch::Tensor mat_to_grid(const cv::Mat& grid, const std::string& what);

/// `grid` drawn over `rgb` through the crop `preprocess` makes, as `attn overlay` draws it.
cv::Mat draw_grid(const cv::Mat& rgb, const torch::Tensor& grid,
                  const vision::PreprocessConfig& preprocess, const OverlayOptions& options);

}  // namespace attnkit::api_detail
