// vision/image/preprocess.h: resize, crop and normalise exactly as the Python tools do (PIL).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <torch/types.h>
#include <opencv2/core/mat.hpp>

namespace attnkit::vision {

/// PIL's resampling filters (Image.Resampling), which torchvision and timm use on PIL images.
enum class Interpolation { kNearest, kBox, kBilinear, kHamming, kBicubic, kLanczos };

/// How the image reaches the model's input size.
enum class CropMode {
  kCenter,  ///< resize the short side to size / crop_pct keeping the aspect ratio, centre-crop
  kSquash,  ///< resize each side to size / crop_pct (aspect not kept), centre-crop (HF: crop_pct 1)
};

/// The preprocessing a checkpoint was trained with; stored in `attnkit.preprocess` metadata.
struct PreprocessConfig {
  int64_t height = 224;     ///< model input height
  int64_t width = 224;      ///< model input width
  double crop_pct = 0.875;  ///< timm crop_pct: resize target = floor(size / crop_pct)
  CropMode crop_mode = CropMode::kCenter;
  Interpolation interpolation = Interpolation::kBicubic;
  std::array<double, 3> mean{0.485, 0.456, 0.406};  ///< per channel, on [0, 1] values
  std::array<double, 3> std{0.229, 0.224, 0.225};
  int64_t channels = 3;  ///< 3 = RGB; 1 = grey (PIL "L": ITU-R 601-2 luma)

  /// JSON: {"height","width","crop_pct","crop_mode":"center|squash",
  /// "interpolation":"nearest|box|bilinear|hamming|bicubic|lanczos","mean":[..],"std":[..],
  /// "channels"}. For channels 1, mean/std use their first element.
  std::string to_json() const;
  /// Parses to_json()'s format; missing keys keep their defaults. Throws CheckpointError on bad
  /// values (unknown interpolation, crop_pct outside (0, 1], non-positive size, std of 0...).
  static PreprocessConfig from_json(const std::string& json);
};

Interpolation interpolation_from_string(const std::string& name);  ///< throws std::invalid_argument
std::string to_string(Interpolation interpolation);

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
