// vision/image/curve_plot.h: line plots of curves side by side (the deletion and insertion curves
// of `attn eval maps --plot`), drawn with OpenCV.
#pragma once

#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

namespace attnkit::vision {

/// One line: y over x, x in [0, 1].
struct PlotCurve {
  std::string name;
  std::vector<double> x, y;
};

/// One panel: a title, axis labels and its lines (each method keeps its colour across panels).
struct PlotPanel {
  std::string title, x_label, y_label;
  std::vector<PlotCurve> curves;
};

/// Panels left to right, a shared legend below -> an RGB8 image. y runs from 0 to the larger of 1
/// and the highest point.
cv::Mat draw_curve_panels(const std::vector<PlotPanel>& panels);

}  // namespace attnkit::vision
