// vision/image/overlay.h: attention maps drawn on the original image: upsampled through the
// preprocessing crop, smoothed, colour-mapped and blended, with a label, a colour bar, an optional
// contour, and panels of many maps (heads, layers, caption words).
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>
#include <opencv2/core/mat.hpp>

#include "vision/image/preprocess.h"

namespace attnkit::vision {

/// OpenCV colormap id for "jet", "viridis", "inferno", "turbo", "magma", "plasma", "hot", ...;
/// throws std::invalid_argument listing the names.
int colormap_from_string(const std::string& name);
/// The colormap names colormap_from_string() knows, for --help.
std::string colormap_names();

struct OverlayStyle {
  int colormap = 2;         ///< cv::COLORMAP_JET
  double alpha = 0.5;       ///< weight of the heat colours over the image
  double smooth = 0.0;      ///< Gaussian sigma in grid cells (0 = none; SAT's figures smooth)
  double threshold = -1.0;  ///< draw the contour of map >= threshold (of [0, 1]); < 0 = none
  bool colorbar = true;     ///< a colour bar along the right edge, when the image is >= 64 px
};

/// The map over the image: grid (gh, gw) upsampled bicubically onto the region of the image
/// the model saw (`box`, from preprocess_crop_box), smoothed, normalised to [0, 1] by the grid's
/// min and max. -> CV_32F of `image_size`, and in `seen` (if given) the CV_8U mask of that region.
cv::Mat map_to_image(const torch::Tensor& grid, const CropBox& box, cv::Size image_size,
                     double smooth = 0.0, cv::Mat* seen = nullptr);

/// Blends a [0, 1] map (CV_32F, the image's size) onto an RGB8 image with the style's colormap,
/// inside `seen` only (everywhere when empty); adds the contour and colour bar. -> RGB8, the
/// same size.
cv::Mat blend_heat(const cv::Mat& rgb, const cv::Mat& heat, const OverlayStyle& style,
                   const cv::Mat& seen = cv::Mat());

/// map_to_image, blend_heat and draw_label in one: the map over the region of `rgb` the model
/// saw (`box`), in `style`, with `label` in the corner (none when empty). -> RGB8, rgb's size.
cv::Mat draw_overlay(const cv::Mat& rgb, const torch::Tensor& grid, const CropBox& box,
                     const OverlayStyle& style, const std::string& label);

/// Writes `text` in the top-left corner on a dark band, its size scaled to the image so it
/// reads at any size; shrunk to fit the width.
void draw_label(cv::Mat& rgb, const std::string& text);

/// A grid of equally sized tiles (each resized to `tile_side` on its longer side) with a title
/// under each, `columns` per row (0 = about square): heads, layers, or a caption's words.
cv::Mat tile_panels(const std::vector<cv::Mat>& tiles, const std::vector<std::string>& titles,
                    int tile_side, int columns = 0);

}  // namespace attnkit::vision
