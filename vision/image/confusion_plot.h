// vision/image/confusion_plot.h: a confusion matrix drawn as a labelled heat map.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>
#include <opencv2/core/mat.hpp>

namespace attnkit::vision {

/// confusion (K, K) int64 counts (rows true, columns predicted) -> an RGB8 image: cells shaded
/// by row-normalised rate (viridis), counts written in each cell, class names on both axes.
cv::Mat draw_confusion_matrix(const torch::Tensor& confusion,
                              const std::vector<std::string>& classes);

}  // namespace attnkit::vision
