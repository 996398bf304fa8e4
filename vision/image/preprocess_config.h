// vision/image/preprocess_config.h: the preprocessing a checkpoint was trained with, as model
// files store it. No OpenCV or LibTorch here: model metadata parsing includes it.
#pragma once

#include <array>
#include <cstdint>
#include <string>

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
  /// Parses to_json()'s format; missing keys keep their defaults. Throws std::invalid_argument on
  /// bad values (unknown interpolation, crop_pct outside (0, 1], non-positive size, std of 0...).
  static PreprocessConfig from_json(const std::string& json);
};

Interpolation interpolation_from_string(const std::string& name);  ///< throws std::invalid_argument
std::string to_string(Interpolation interpolation);

}  // namespace attnkit::vision
