// vision/image/overlay.cpp: upsampling, colour mapping, labels and panels with OpenCV.
#include "vision/image/overlay.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

#include <torch/torch.h>
#include <opencv2/imgproc.hpp>

namespace attnkit::vision {
namespace {

const std::map<std::string, int>& colormaps() {
  static const std::map<std::string, int> table = {
      {"autumn", cv::COLORMAP_AUTUMN},     {"bone", cv::COLORMAP_BONE},
      {"jet", cv::COLORMAP_JET},           {"winter", cv::COLORMAP_WINTER},
      {"rainbow", cv::COLORMAP_RAINBOW},   {"ocean", cv::COLORMAP_OCEAN},
      {"summer", cv::COLORMAP_SUMMER},     {"spring", cv::COLORMAP_SPRING},
      {"cool", cv::COLORMAP_COOL},         {"hsv", cv::COLORMAP_HSV},
      {"pink", cv::COLORMAP_PINK},         {"hot", cv::COLORMAP_HOT},
      {"parula", cv::COLORMAP_PARULA},     {"magma", cv::COLORMAP_MAGMA},
      {"inferno", cv::COLORMAP_INFERNO},   {"plasma", cv::COLORMAP_PLASMA},
      {"viridis", cv::COLORMAP_VIRIDIS},   {"cividis", cv::COLORMAP_CIVIDIS},
      {"twilight", cv::COLORMAP_TWILIGHT}, {"turbo", cv::COLORMAP_TURBO},
  };
  return table;
}

/// RGB colours of a colormap for [0, 1] values (CV_32F) -> CV_8UC3.
cv::Mat colorize(const cv::Mat& values, int colormap) {
  cv::Mat bytes, bgr, rgb;
  values.convertTo(bytes, CV_8U, 255.0);
  cv::applyColorMap(bytes, bgr, colormap);
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

/// A line width and font scale that read on an image of this size.
int stroke(const cv::Mat& image) {
  return std::max(1, static_cast<int>(std::lround(std::min(image.cols, image.rows) / 250.0)));
}

}  // namespace

int colormap_from_string(const std::string& name) {
  const auto it = colormaps().find(name);
  if (it == colormaps().end()) {
    throw std::invalid_argument("unknown colormap '" + name + "' (" + colormap_names() + ")");
  }
  return it->second;
}

std::string colormap_names() {
  std::string out;
  for (const auto& [name, id] : colormaps()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

cv::Mat map_to_image(const torch::Tensor& grid, const CropBox& box, cv::Size image_size,
                     double smooth, cv::Mat* seen) {
  TORCH_CHECK(grid.dim() == 2 && grid.numel() > 0, "map_to_image: expected a grid (gh, gw), got ",
              grid.sizes());
  TORCH_CHECK(image_size.width > 0 && image_size.height > 0 && box.width > 0 && box.height > 0,
              "map_to_image: empty image or crop box");
  const auto values = grid.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const cv::Mat cells(static_cast<int>(values.size(0)), static_cast<int>(values.size(1)), CV_32F,
                      const_cast<float*>(values.data_ptr<float>()));
  // The part of the crop box inside the image, in image pixels.
  const cv::Rect image_rect(0, 0, image_size.width, image_size.height);
  const auto x0 = static_cast<int>(std::lround(box.x));
  const auto y0 = static_cast<int>(std::lround(box.y));
  const cv::Rect box_rect(x0, y0,
                          std::max(1, static_cast<int>(std::lround(box.x + box.width)) - x0),
                          std::max(1, static_cast<int>(std::lround(box.y + box.height)) - y0));
  const cv::Rect visible = box_rect & image_rect;
  cv::Mat heat = cv::Mat::zeros(image_size, CV_32F);
  if (seen) *seen = cv::Mat::zeros(image_size, CV_8U);
  if (visible.empty()) return heat;
  // Bicubic upsampling and smoothing at a working size of at most 512 pixels, then a bilinear
  // resize to the box: the same picture, but a 6000x4000 photo does not need a 400-pixel-wide
  // Gaussian kernel.
  const double work_scale = std::min(1.0, 512.0 / std::max(box_rect.width, box_rect.height));
  const cv::Size work(std::max(1, static_cast<int>(std::lround(box_rect.width * work_scale))),
                      std::max(1, static_cast<int>(std::lround(box_rect.height * work_scale))));
  cv::Mat upsampled;
  cv::resize(cells, upsampled, work, 0, 0, cv::INTER_CUBIC);
  if (smooth > 0) {
    const double sigma = smooth * work.width / static_cast<double>(values.size(1));
    cv::GaussianBlur(upsampled, upsampled, cv::Size(0, 0), sigma, sigma, cv::BORDER_REPLICATE);
  }
  // Normalised by the grid's own range, with bicubic's over- and undershoot clipped: a cold
  // background stays at 0 instead of being lifted by the ringing next to a hot cell.
  double low = 0, high = 0;
  cv::minMaxLoc(cells, &low, &high);
  cv::Mat normalised;
  // A map flat up to float noise stays flat instead of having its noise stretched to [0, 1].
  const bool flat = high - low <= 1e-6 * std::max({std::abs(high), std::abs(low), 1e-30});
  if (!flat) {
    upsampled.convertTo(normalised, CV_32F, 1.0 / (high - low), -low / (high - low));
    cv::min(cv::max(normalised, 0.0), 1.0, normalised);
    if (smooth > 0) cv::normalize(normalised, normalised, 0.0, 1.0, cv::NORM_MINMAX);
  } else {
    normalised = cv::Mat::zeros(upsampled.size(), CV_32F);
  }
  cv::Mat full;
  cv::resize(normalised, full, box_rect.size(), 0, 0,
             work == box_rect.size() ? cv::INTER_NEAREST : cv::INTER_LINEAR);
  full(cv::Rect(visible.x - box_rect.x, visible.y - box_rect.y, visible.width, visible.height))
      .copyTo(heat(visible));
  if (seen) (*seen)(visible).setTo(255);
  return heat;
}

cv::Mat blend_heat(const cv::Mat& rgb, const cv::Mat& heat, const OverlayStyle& style,
                   const cv::Mat& seen) {
  TORCH_CHECK(rgb.type() == CV_8UC3 && heat.type() == CV_32F && rgb.size() == heat.size(),
              "blend_heat: expected an RGB8 image and a CV_32F map of its size");
  TORCH_CHECK(style.alpha >= 0 && style.alpha <= 1, "blend_heat: alpha must be in [0, 1], got ",
              style.alpha);
  const cv::Mat colours = colorize(heat, style.colormap);
  cv::Mat out;
  cv::addWeighted(rgb, 1.0 - style.alpha, colours, style.alpha, 0.0, out);
  if (!seen.empty()) {
    cv::Mat kept = rgb.clone();
    out.copyTo(kept, seen);
    out = kept;
  }
  const int width = stroke(out);
  if (style.threshold >= 0) {
    cv::Mat inside = heat >= style.threshold;
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(inside, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
    cv::drawContours(out, contours, -1, cv::Scalar(255, 255, 255), width, cv::LINE_AA);
  }
  if (style.colorbar && out.cols >= 64 && out.rows >= 64) {
    // Top is 1, bottom 0, on the right edge, half the height.
    const int bar_width = std::max(4, out.cols / 40);
    const int bar_height = out.rows / 2;
    cv::Mat ramp(bar_height, 1, CV_32F);
    for (int y = 0; y < bar_height; ++y) {
      ramp.at<float>(y) = 1.0f - static_cast<float>(y) / static_cast<float>(bar_height - 1);
    }
    cv::Mat bar;
    cv::resize(colorize(ramp, style.colormap), bar, cv::Size(bar_width, bar_height), 0, 0,
               cv::INTER_NEAREST);
    const cv::Rect where(out.cols - bar_width - width * 2, (out.rows - bar_height) / 2, bar_width,
                         bar_height);
    bar.copyTo(out(where));
    cv::rectangle(out, where, cv::Scalar(255, 255, 255), std::max(1, width / 2));
  }
  return out;
}

cv::Mat draw_overlay(const cv::Mat& rgb, const torch::Tensor& grid, const CropBox& box,
                     const OverlayStyle& style, const std::string& label) {
  cv::Mat seen;
  const auto heat = map_to_image(grid, box, rgb.size(), style.smooth, &seen);
  auto out = blend_heat(rgb, heat, style, seen);
  draw_label(out, label);
  return out;
}

void draw_label(cv::Mat& rgb, const std::string& text) {
  if (text.empty() || rgb.empty()) return;
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const int thickness = std::max(1, stroke(rgb));
  // About 1/18 of the shorter side tall, but never wider than the image.
  double scale = std::max(0.3, std::min(rgb.cols, rgb.rows) / 18.0 / 22.0);
  int baseline = 0;
  cv::Size size = cv::getTextSize(text, font, scale, thickness, &baseline);
  const int margin = std::max(2, size.height / 3);
  if (size.width + 2 * margin > rgb.cols) {
    scale *= static_cast<double>(rgb.cols - 2 * margin) / size.width;
    scale = std::max(scale, 0.2);
    size = cv::getTextSize(text, font, scale, thickness, &baseline);
  }
  const cv::Rect band(0, 0, std::min(rgb.cols, size.width + 2 * margin),
                      std::min(rgb.rows, size.height + baseline + 2 * margin));
  cv::Mat region = rgb(band);
  region.convertTo(region, -1, 0.35, 0);  // darken, so white text reads on any colour
  cv::putText(rgb, text, cv::Point(margin, margin + size.height), font, scale,
              cv::Scalar(255, 255, 255), thickness, cv::LINE_AA);
}

cv::Mat tile_panels(const std::vector<cv::Mat>& tiles, const std::vector<std::string>& titles,
                    int tile_side, int columns) {
  TORCH_CHECK(!tiles.empty() && tile_side > 0, "tile_panels: no tiles");
  TORCH_CHECK(titles.empty() || titles.size() == tiles.size(), "tile_panels: ", tiles.size(),
              " tiles but ", titles.size(), " titles");
  const int count = static_cast<int>(tiles.size());
  if (columns <= 0) columns = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(count))));
  columns = std::min(columns, count);
  const int rows = (count + columns - 1) / columns;
  const double aspect = static_cast<double>(tiles[0].cols) / tiles[0].rows;
  const int width = aspect >= 1 ? tile_side : std::max(1, static_cast<int>(tile_side * aspect));
  const int height = aspect >= 1 ? std::max(1, static_cast<int>(tile_side / aspect)) : tile_side;
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const double scale = std::max(0.35, tile_side / 260.0);
  const int thickness = std::max(1, tile_side / 200);
  const int title_height = titles.empty() ? 0 : static_cast<int>(32 * scale) + 8;
  const int gap = 4;
  cv::Mat panel(rows * (height + title_height + gap) + gap, columns * (width + gap) + gap, CV_8UC3,
                cv::Scalar(255, 255, 255));
  for (int i = 0; i < count; ++i) {
    const int x = gap + (i % columns) * (width + gap);
    const int y = gap + (i / columns) * (height + title_height + gap);
    cv::Mat tile;
    cv::resize(tiles[i], tile, cv::Size(width, height), 0, 0,
               tiles[i].cols < width ? cv::INTER_NEAREST : cv::INTER_AREA);
    tile.copyTo(panel(cv::Rect(x, y, width, height)));
    if (titles.empty() || titles[i].empty()) continue;
    int baseline = 0;
    double fitted = scale;
    cv::Size size = cv::getTextSize(titles[i], font, fitted, thickness, &baseline);
    if (size.width > width) {
      fitted *= static_cast<double>(width) / size.width;
      size = cv::getTextSize(titles[i], font, fitted, thickness, &baseline);
    }
    cv::putText(
        panel, titles[i],
        cv::Point(x + (width - size.width) / 2, y + height + (title_height + size.height) / 2),
        font, fitted, cv::Scalar(0, 0, 0), thickness, cv::LINE_AA);
  }
  return panel;
}

}  // namespace attnkit::vision
