// vision/image/preprocess.h: resize, crop and normalise exactly as the Python tools do (PIL).
#pragma once

#include <cstdint>
#include <string>

#include <torch/types.h>
#include <opencv2/core/mat.hpp>

#include "vision/image/preprocess_config.h"

namespace attnkit::vision {

/// Resizes an 8-bit image (CV_8UC1 or CV_8UC3) to out_width x out_height exactly as PIL's
/// Image.resize does for 8-bit images: separable, horizontal pass first, filter support scaled by
/// the downscale factor (antialiasing), fixed-point coefficients with 22 fractional bits and
/// rounding to 8 bits after each pass. Nearest follows PIL's nearest path.
cv::Mat resize_like_pil(const cv::Mat& image, int out_width, int out_height,
                        Interpolation interpolation);

/// The full eval transform of timm / torchvision on an RGB8 image (HxWx3, CV_8UC3):
/// resize (per crop_mode), centre crop (offsets rounded as Python's round() does, zero padding if
/// the image is smaller), to float in [0, 1], normalise. Returns (C, height, width) float32.
torch::Tensor preprocess_image(const cv::Mat& rgb, const PreprocessConfig& config);

/// The resize and crop of preprocess_image() without the normalisation: (C, height, width) uint8.
torch::Tensor resize_crop_image(const cv::Mat& rgb, const PreprocessConfig& config);

/// ToTensor + Normalize on 8-bit pixels (..., C, H, W) -> float32, torchvision's float order.
torch::Tensor normalize_pixels(const torch::Tensor& pixels, const PreprocessConfig& config);

/// The crop box, in original-image pixels, that preprocess_image() maps onto the model input:
/// lets overlays undo the resize and crop. x, y may be negative when padding happened.
struct CropBox {
  double x = 0, y = 0, width = 0, height = 0;
};
CropBox preprocess_crop_box(int image_width, int image_height, const PreprocessConfig& config);

}  // namespace attnkit::vision
