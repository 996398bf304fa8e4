// vision/image/preprocess.cpp: PIL-exact resampling and the timm/torchvision eval transform.
#include "vision/image/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <opencv2/core.hpp>

#include "vision/errors.h"

namespace attnkit::vision {
namespace {

// PIL Resample.c: PRECISION_BITS = 32 - 8 - 2, i.e. 22 fractional bits in a 32-bit accumulator:
// 8 bits for the result and 2 spare for the sign and the overshoot of filters with negative lobes.
constexpr int kPrecisionBits = 32 - 8 - 2;

// The filters of PIL Resample.c, reproduced operation by operation: the coefficients are
// rounded to fixed point afterwards, so any reordering of the double arithmetic could flip a
// coefficient by one unit and an output pixel by one level.
double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  // PIL writes the window constants as float literals (0.54f, 0.46f); keep their float values.
  return std::sin(x) / x * (static_cast<double>(0.54f) + static_cast<double>(0.46f) * std::cos(x));
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;  // Keys' kernel with a = -0.5, as PIL uses
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct Filter {
  double support;
  double (*weight)(double);
};

Filter filter_for(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::kBox:
      return {0.5, box_filter};
    case Interpolation::kBilinear:
      return {1.0, bilinear_filter};
    case Interpolation::kHamming:
      return {1.0, hamming_filter};
    case Interpolation::kBicubic:
      return {2.0, bicubic_filter};
    case Interpolation::kLanczos:
      return {3.0, lanczos_filter};
    case Interpolation::kNearest:
      break;
  }
  throw std::invalid_argument("resize_like_pil: nearest has no convolution filter");
}

// Fixed-point coefficients for outputs [begin, begin + size) of one axis: output begin + i reads
// `count[i]` inputs starting at `first[i]`.
struct AxisCoefficients {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> coeffs;  // size * ksize, row i for output begin + i
};

// PIL Resample.c precompute_coeffs() + normalize_coeffs_8bpc(): the filter is stretched by the
// downscale factor (antialiasing), weights are normalised to sum 1, then rounded half away from
// zero to 22-bit fixed point. Each output's weights depend only on its own index, so computing
// a sub-range gives exactly the values of the full computation.
AxisCoefficients precompute_coefficients(int in_size, int out_size, int begin, int size,
                                         const Filter& filter) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = filter.support * filterscale;
  // PIL multiplies by the reciprocal rather than dividing; the last bit can differ.
  const double ss = 1.0 / filterscale;

  AxisCoefficients axis;
  axis.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  axis.first.resize(size);
  axis.count.resize(size);
  axis.coeffs.assign(static_cast<size_t>(size) * axis.ksize, 0);
  std::vector<double> weights(axis.ksize);
  for (int i = 0; i < size; ++i) {
    const double center = (begin + i + 0.5) * scale;
    // (int) truncation as in C; negative values truncate toward zero and are clamped anyway.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size);
    const int n = std::max(xmax - xmin, 0);
    double sum = 0.0;
    for (int k = 0; k < n; ++k) {
      const double w = filter.weight((k + xmin - center + 0.5) * ss);
      weights[k] = w;
      sum += w;
    }
    int32_t* row = &axis.coeffs[static_cast<size_t>(i) * axis.ksize];
    for (int k = 0; k < n; ++k) {
      const double w = sum != 0.0 ? weights[k] / sum : weights[k];
      const double fixed = w * (1 << kPrecisionBits);
      row[k] = static_cast<int32_t>(w < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    axis.first[i] = xmin;
    axis.count[i] = n;
  }
  return axis;
}

// PIL Resample.c clip8(): the accumulator carries 22 fractional bits.
inline uint8_t clip8(int32_t value) {
  if (value >= (1 << kPrecisionBits << 8)) return 255;
  if (value <= 0) return 0;
  return static_cast<uint8_t>(value >> kPrecisionBits);
}

// Horizontal pass: output row y is source row row_begin + y.
template <int C>
void resample_horizontal(const cv::Mat& in, int row_begin, const AxisCoefficients& axis,
                         cv::Mat& out) {
  cv::parallel_for_(cv::Range(0, out.rows), [&](const cv::Range& rows) {
    for (int y = rows.start; y < rows.end; ++y) {
      const uint8_t* src = in.ptr<uint8_t>(row_begin + y);
      uint8_t* dst = out.ptr<uint8_t>(y);
      for (int x = 0; x < out.cols; ++x) {
        const int32_t* k = &axis.coeffs[static_cast<size_t>(x) * axis.ksize];
        const uint8_t* s = src + static_cast<size_t>(axis.first[x]) * C;
        const int n = axis.count[x];
        // All channels in one sweep over the taps: one pass over the source pixels.
        int32_t acc[C];
        for (int c = 0; c < C; ++c) acc[c] = 1 << (kPrecisionBits - 1);
        for (int j = 0; j < n; ++j) {
          for (int c = 0; c < C; ++c) acc[c] += s[j * C + c] * k[j];
        }
        for (int c = 0; c < C; ++c) dst[x * C + c] = clip8(acc[c]);
      }
    }
  });
}

// Vertical pass; `row_offset` is the source row that `in`'s first row holds.
template <int C>
void resample_vertical(const cv::Mat& in, int row_offset, const AxisCoefficients& axis,
                       cv::Mat& out) {
  const int values = out.cols * C;
  cv::parallel_for_(cv::Range(0, out.rows), [&](const cv::Range& rows) {
    std::vector<int32_t> acc(values);
    for (int y = rows.start; y < rows.end; ++y) {
      const int32_t* k = &axis.coeffs[static_cast<size_t>(y) * axis.ksize];
      const int first = axis.first[y] - row_offset;
      std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
      for (int j = 0; j < axis.count[y]; ++j) {
        const uint8_t* src = in.ptr<uint8_t>(first + j);
        const int32_t kj = k[j];
        for (int v = 0; v < values; ++v) acc[v] += src[v] * kj;
      }
      uint8_t* dst = out.ptr<uint8_t>(y);
      for (int v = 0; v < values; ++v) dst[v] = clip8(acc[v]);
    }
  });
}

// The `window` part of the out_width x out_height convolution resize, bit-identical to the same
// region of the full result: every output pixel depends only on its own coordinates. The
// centre crop thus never pays for (or allocates) the parts of the resized image it drops.
template <int C>
cv::Mat resample_convolution(const cv::Mat& image, int out_width, int out_height,
                             const cv::Rect& window, const Filter& filter) {
  // PIL Resample.c ImagingResampleInner: a pass runs only if that dimension changes; the
  // horizontal pass runs first, on just the source rows the vertical pass reads, and rounds
  // them to 8 bits in between.
  const bool need_horizontal = out_width != image.cols;
  const bool need_vertical = out_height != image.rows;
  AxisCoefficients vertical;
  int row_begin = window.y;
  int row_end = window.y + window.height;
  if (need_vertical) {
    vertical = precompute_coefficients(image.rows, out_height, window.y, window.height, filter);
    row_begin = vertical.first.front();
    row_end = vertical.first.back() + vertical.count.back();
  }
  cv::Mat rows;
  if (need_horizontal) {
    const AxisCoefficients horizontal =
        precompute_coefficients(image.cols, out_width, window.x, window.width, filter);
    rows.create(row_end - row_begin, window.width, image.type());
    resample_horizontal<C>(image, row_begin, horizontal, rows);
  } else {
    rows = image(cv::Rect(window.x, row_begin, window.width, row_end - row_begin));
  }
  if (!need_vertical) return need_horizontal ? rows : rows.clone();
  cv::Mat out(window.height, window.width, image.type());
  resample_vertical<C>(rows, row_begin, vertical, out);
  return out;
}

// PIL's NEAREST resize goes through ImagingTransformAffine -> ImagingScaleAffine (Geometry.c):
// the source coordinate of output pixel i is the running sum scale/2 + i*scale, accumulated in
// double one step at a time (so not always floor((i + 0.5) * scale)), then truncated.
std::vector<int> nearest_sources(int in_size, int out_size) {
  const double step = static_cast<double>(in_size) / out_size;
  std::vector<int> sources(out_size);
  double position = step * 0.5;
  for (int i = 0; i < out_size; ++i) {
    sources[i] = std::clamp(position < 0.0 ? 0 : static_cast<int>(position), 0, in_size - 1);
    position += step;
  }
  return sources;
}

cv::Mat resample_nearest(const cv::Mat& image, int out_width, int out_height,
                         const cv::Rect& window) {
  const std::vector<int> xs = nearest_sources(image.cols, out_width);
  const std::vector<int> ys = nearest_sources(image.rows, out_height);
  const size_t pixel_bytes = image.elemSize();
  cv::Mat out(window.height, window.width, image.type());
  for (int y = 0; y < window.height; ++y) {
    const uint8_t* src = image.ptr<uint8_t>(ys[window.y + y]);
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int x = 0; x < window.width; ++x) {
      std::copy_n(src + xs[window.x + x] * pixel_bytes, pixel_bytes, dst + x * pixel_bytes);
    }
  }
  return out;
}

// resize_like_pil restricted to `window` (inside the output rectangle); see resample_convolution.
cv::Mat resize_window(const cv::Mat& image, int out_width, int out_height, const cv::Rect& window,
                      Interpolation interpolation) {
  if (out_width == image.cols && out_height == image.rows) return image(window).clone();
  if (interpolation == Interpolation::kNearest) {
    return resample_nearest(image, out_width, out_height, window);
  }
  const Filter filter = filter_for(interpolation);
  return image.channels() == 3
             ? resample_convolution<3>(image, out_width, out_height, window, filter)
             : resample_convolution<1>(image, out_width, out_height, window, filter);
}

// PIL Convert.c rgb2l: ITU-R 601-2 luma in 16-bit fixed point, rounded.
cv::Mat rgb_to_pil_luma(const cv::Mat& rgb) {
  cv::Mat grey(rgb.rows, rgb.cols, CV_8UC1);
  for (int y = 0; y < rgb.rows; ++y) {
    const uint8_t* src = rgb.ptr<uint8_t>(y);
    uint8_t* dst = grey.ptr<uint8_t>(y);
    for (int x = 0; x < rgb.cols; ++x) {
      const uint32_t r = src[3 * x], g = src[3 * x + 1], b = src[3 * x + 2];
      dst[x] = static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
    }
  }
  return grey;
}

// Python's round() on a float: half to even. The default FP rounding mode does exactly that.
int64_t round_half_even(double value) { return static_cast<int64_t>(std::nearbyint(value)); }

// Where the resize lands and where the crop starts in the resized image (negative = padding).
struct Plan {
  int64_t resized_width = 0;
  int64_t resized_height = 0;
  int64_t left = 0;
  int64_t top = 0;
};

// torchvision F.center_crop: pad (left/top get the floor half) when the crop is larger,
// otherwise start at int(round((size - crop) / 2.0)).
int64_t crop_origin(int64_t size, int64_t crop) {
  if (crop > size) return -((crop - size) / 2);
  return round_half_even(static_cast<double>(size - crop) / 2.0);
}

void check_config(const PreprocessConfig& config, const char* where) {
  // crop_pct > 1 is allowed here (timm accepts it; the crop then pads), only from_json keeps
  // stored configs within (0, 1].
  if (config.height <= 0 || config.width <= 0 || !(config.crop_pct > 0.0) ||
      !std::isfinite(config.crop_pct) || (config.channels != 1 && config.channels != 3)) {
    throw std::invalid_argument(std::string(where) +
                                ": invalid PreprocessConfig (size, crop_pct or channels)");
  }
}

Plan plan_for(int64_t width, int64_t height, const PreprocessConfig& config) {
  if (width <= 0 || height <= 0) {
    throw std::invalid_argument("preprocess: image has zero width or height");
  }
  // timm transforms_imagenet_eval: scale_size = math.floor(img_size / crop_pct) per side.
  const auto scale_h = static_cast<int64_t>(std::floor(config.height / config.crop_pct));
  const auto scale_w = static_cast<int64_t>(std::floor(config.width / config.crop_pct));
  Plan plan;
  if (config.crop_mode == CropMode::kSquash) {
    plan.resized_width = scale_w;
    plan.resized_height = scale_h;
  } else if (scale_h == scale_w) {
    // torchvision Resize(int): short side -> scale, long side -> int(scale * long / short).
    const int64_t s = scale_h;
    if (width <= height) {
      plan.resized_width = s;
      plan.resized_height = static_cast<int64_t>(static_cast<double>(s * height) / width);
    } else {
      plan.resized_height = s;
      plan.resized_width = static_cast<int64_t>(static_cast<double>(s * width) / height);
    }
  } else {
    // Non-square target: timm ResizeKeepRatio(scale_size, longest=0), i.e. the smallest
    // aspect-preserving size that covers (scale_h, scale_w), each side round()ed.
    const double ratio = std::min(static_cast<double>(height) / static_cast<double>(scale_h),
                                  static_cast<double>(width) / static_cast<double>(scale_w));
    plan.resized_height = round_half_even(static_cast<double>(height) / ratio);
    plan.resized_width = round_half_even(static_cast<double>(width) / ratio);
  }
  // crop_pct > size gives a scale of 0, where torchvision would fail; resize to 1 pixel instead.
  plan.resized_width = std::max<int64_t>(plan.resized_width, 1);
  plan.resized_height = std::max<int64_t>(plan.resized_height, 1);
  // Only the cropped window is ever computed, but its coordinates must fit an int.
  if (plan.resized_width > std::numeric_limits<int>::max() ||
      plan.resized_height > std::numeric_limits<int>::max()) {
    throw std::invalid_argument("preprocess: aspect ratio too extreme to resize");
  }
  plan.left = crop_origin(plan.resized_width, config.width);
  plan.top = crop_origin(plan.resized_height, config.height);
  return plan;
}

}  // namespace

cv::Mat resize_like_pil(const cv::Mat& image, int out_width, int out_height,
                        Interpolation interpolation) {
  if (image.depth() != CV_8U || (image.channels() != 1 && image.channels() != 3)) {
    throw std::invalid_argument("resize_like_pil: expected an 8-bit image with 1 or 3 channels");
  }
  if (image.empty() || out_width <= 0 || out_height <= 0) {
    throw std::invalid_argument("resize_like_pil: empty input or non-positive output size");
  }
  // Same size: PIL Image.resize returns a copy.
  return resize_window(image, out_width, out_height, cv::Rect(0, 0, out_width, out_height),
                       interpolation);
}

torch::Tensor resize_crop_image(const cv::Mat& rgb, const PreprocessConfig& config) {
  if (rgb.empty() || rgb.type() != CV_8UC3) {
    throw std::invalid_argument("resize_crop_image: expected a non-empty 8-bit RGB image");
  }
  check_config(config, "resize_crop_image");
  const Plan plan = plan_for(rgb.cols, rgb.rows, config);

  // torchvision/timm run the whole chain on a PIL image already converted to the model's mode.
  const cv::Mat source = config.channels == 1 ? rgb_to_pil_luma(rgb) : rgb;

  // Resize then crop/pad, computing only the resized pixels the crop keeps (the same values the
  // full resize would give) and leaving the padding at zero.
  const int crop_w = static_cast<int>(config.width);
  const int crop_h = static_cast<int>(config.height);
  cv::Mat cropped = cv::Mat::zeros(crop_h, crop_w, source.type());
  const int64_t x0 = std::max<int64_t>(plan.left, 0);
  const int64_t y0 = std::max<int64_t>(plan.top, 0);
  const int64_t x1 = std::min<int64_t>(plan.left + crop_w, plan.resized_width);
  const int64_t y1 = std::min<int64_t>(plan.top + crop_h, plan.resized_height);
  if (x1 > x0 && y1 > y0) {
    const cv::Rect window(static_cast<int>(x0), static_cast<int>(y0), static_cast<int>(x1 - x0),
                          static_cast<int>(y1 - y0));
    const cv::Mat kept =
        resize_window(source, static_cast<int>(plan.resized_width),
                      static_cast<int>(plan.resized_height), window, config.interpolation);
    kept.copyTo(cropped(cv::Rect(static_cast<int>(x0 - plan.left), static_cast<int>(y0 - plan.top),
                                 window.width, window.height)));
  }
  const int64_t c = config.channels;
  return torch::from_blob(cropped.data, {crop_h, crop_w, c}, torch::kUInt8)
      .permute({2, 0, 1})
      .clone();
}

torch::Tensor normalize_pixels(const torch::Tensor& pixels, const PreprocessConfig& config) {
  const int64_t c = config.channels;
  TORCH_CHECK(pixels.dim() >= 3 && pixels.size(-3) == c, "normalize_pixels: expected (..., ", c,
              ", H, W), got ", pixels.sizes());
  // ToTensor then Normalize, with torchvision's float32 operations in its order:
  // x / 255, then (x - mean) / std, so the result matches it bit for bit.
  torch::Tensor out = pixels.to(torch::kFloat32).contiguous().div_(255);
  const torch::Tensor mean =
      torch::tensor(std::vector<double>(config.mean.begin(), config.mean.begin() + c),
                    torch::kFloat32)
          .view({c, 1, 1});
  const torch::Tensor stdev =
      torch::tensor(std::vector<double>(config.std.begin(), config.std.begin() + c),
                    torch::kFloat32)
          .view({c, 1, 1});
  out.sub_(mean).div_(stdev);
  return out;
}

torch::Tensor preprocess_image(const cv::Mat& rgb, const PreprocessConfig& config) {
  return normalize_pixels(resize_crop_image(rgb, config), config);
}

CropBox preprocess_crop_box(int image_width, int image_height, const PreprocessConfig& config) {
  check_config(config, "preprocess_crop_box");
  const Plan plan = plan_for(image_width, image_height, config);
  const double sx = static_cast<double>(image_width) / static_cast<double>(plan.resized_width);
  const double sy = static_cast<double>(image_height) / static_cast<double>(plan.resized_height);
  CropBox box;
  box.x = static_cast<double>(plan.left) * sx;
  box.y = static_cast<double>(plan.top) * sy;
  box.width = static_cast<double>(config.width) * sx;
  box.height = static_cast<double>(config.height) * sy;
  return box;
}

}  // namespace attnkit::vision
