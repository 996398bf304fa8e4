// vision/api/api_helpers.cpp: pixel checks, grid conversions and drawing for the embedding API.
#include "vision/api/api_helpers.h"

#include <stdexcept>

#include <torch/torch.h>
#include <opencv2/imgproc.hpp>

#include "vision/image/overlay.h"

namespace attnkit::api_detail {

cv::Mat as_rgb8(const cv::Mat& image, const std::string& what) {
  if (image.empty()) throw std::invalid_argument(what + ": the image is empty");
  if (image.type() == CV_8UC3) return image;
  if (image.type() == CV_8UC1) {
    cv::Mat rgb;
    cv::cvtColor(image, rgb, cv::COLOR_GRAY2RGB);
    return rgb;
  }
  throw std::invalid_argument(what +
                              ": expected an 8-bit RGB (CV_8UC3) or grey (CV_8UC1) image, "
                              "got OpenCV type " +
                              std::to_string(image.type()) + " with " +
                              std::to_string(image.channels()) + " channels");
}

cv::Mat grid_to_mat(const torch::Tensor& grid) {
  TORCH_CHECK(grid.dim() == 2, "grid_to_mat: expected a (gh, gw) grid, got ", grid.sizes());
  const auto values = grid.to(torch::kFloat).contiguous();
  return cv::Mat(static_cast<int>(values.size(0)), static_cast<int>(values.size(1)), CV_32F,
                 values.data_ptr<float>())
      .clone();
}

torch::Tensor mat_to_grid(const cv::Mat& grid, const std::string& what) {
  if (grid.empty() || grid.type() != CV_32FC1) {
    throw std::invalid_argument(what + ": expected a non-empty CV_32F map grid, got OpenCV type " +
                                std::to_string(grid.type()) + " of " + std::to_string(grid.rows) +
                                "x" + std::to_string(grid.cols));
  }
  const cv::Mat continuous = grid.isContinuous() ? grid : grid.clone();
  return torch::from_blob(const_cast<float*>(continuous.ptr<float>()), {grid.rows, grid.cols},
                          torch::kFloat)
      .clone();
}

cv::Mat draw_grid(const cv::Mat& rgb, const torch::Tensor& grid,
                  const vision::PreprocessConfig& preprocess, const OverlayOptions& options) {
  if (options.alpha < 0 || options.alpha > 1) {
    throw std::invalid_argument("overlay: alpha must be in [0, 1], got " +
                                std::to_string(options.alpha));
  }
  if (options.smooth < 0) {
    throw std::invalid_argument("overlay: smooth must be >= 0, got " +
                                std::to_string(options.smooth));
  }
  vision::OverlayStyle style;
  style.colormap = vision::colormap_from_string(options.colormap);
  style.alpha = options.alpha;
  style.smooth = options.smooth;
  style.colorbar = options.colorbar;
  return vision::draw_overlay(
      rgb, grid, vision::preprocess_crop_box(rgb.cols, rgb.rows, preprocess), style, options.label);
}

}  // namespace attnkit::api_detail
