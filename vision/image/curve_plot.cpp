// vision/image/curve_plot.cpp: curve panels with axes, ticks and a legend.
#include "vision/image/curve_plot.h"

#include <algorithm>
#include <cstdio>
#include <opencv2/imgproc.hpp>

namespace attnkit::vision {
namespace {

// Tableau's ten colours (RGB), distinguishable and colour-blind friendly enough.
const cv::Scalar kColours[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                               {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                               {188, 189, 34},  {23, 190, 207}};
constexpr int kPanelWidth = 420, kPanelHeight = 330, kLeft = 60, kTop = 50, kRight = 20,
              kBottom = 50;
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

std::string tick_text(double value) {
  char text[16];
  std::snprintf(text, sizeof text, "%.2g", value);
  return text;
}

void draw_panel(cv::Mat& image, int x0, const PlotPanel& panel, double y_max) {
  const cv::Scalar black(0, 0, 0), grey(200, 200, 200);
  const int width = kPanelWidth - kLeft - kRight, height = kPanelHeight - kTop - kBottom;
  const cv::Point origin(x0 + kLeft, kTop + height);
  auto to_pixel = [&](double x, double y) {
    return cv::Point(origin.x + static_cast<int>(x * width),
                     origin.y - static_cast<int>(y / y_max * height));
  };
  for (int i = 0; i <= 4; ++i) {
    const double f = i / 4.0;
    cv::line(image, to_pixel(f, 0), to_pixel(f, y_max), grey, 1);
    cv::line(image, to_pixel(0, f * y_max), to_pixel(1, f * y_max), grey, 1);
    cv::putText(image, tick_text(f), to_pixel(f, 0) + cv::Point(-10, 18), kFont, 0.4, black, 1,
                cv::LINE_AA);
    cv::putText(image, tick_text(f * y_max), to_pixel(0, f * y_max) + cv::Point(-40, 4), kFont, 0.4,
                black, 1, cv::LINE_AA);
  }
  cv::rectangle(image, to_pixel(0, y_max), to_pixel(1, 0), black, 1);
  cv::putText(image, panel.title, cv::Point(x0 + kLeft, 18), kFont, 0.55, black, 1, cv::LINE_AA);
  cv::putText(image, panel.x_label, cv::Point(x0 + kLeft + width / 2 - 60, kPanelHeight - 12),
              kFont, 0.45, black, 1, cv::LINE_AA);
  cv::putText(image, panel.y_label, cv::Point(x0 + 8, kTop - 16), kFont, 0.4, black, 1,
              cv::LINE_AA);
  for (size_t c = 0; c < panel.curves.size(); ++c) {
    const auto& curve = panel.curves[c];
    std::vector<cv::Point> points;
    for (size_t i = 0; i < std::min(curve.x.size(), curve.y.size()); ++i) {
      points.push_back(to_pixel(std::clamp(curve.x[i], 0.0, 1.0), std::max(curve.y[i], 0.0)));
    }
    cv::polylines(image, points, false, kColours[c % 10], 2, cv::LINE_AA);
  }
}

}  // namespace

cv::Mat draw_curve_panels(const std::vector<PlotPanel>& panels) {
  double y_max = 1.0;
  size_t lines = 0;
  for (const auto& panel : panels) {
    lines = std::max(lines, panel.curves.size());
    for (const auto& curve : panel.curves) {
      for (const double y : curve.y) y_max = std::max(y_max, y);
    }
  }
  const int legend_rows = static_cast<int>((lines + 3) / 4);
  const int columns = std::max<int>(1, static_cast<int>(panels.size()));
  cv::Mat image(kPanelHeight + 10 + 22 * legend_rows, columns * kPanelWidth, CV_8UC3,
                cv::Scalar(255, 255, 255));
  for (size_t p = 0; p < panels.size(); ++p) {
    draw_panel(image, static_cast<int>(p) * kPanelWidth, panels[p], y_max);
  }
  if (!panels.empty()) {
    const auto& curves = panels.front().curves;
    for (size_t c = 0; c < curves.size(); ++c) {
      const int x = kLeft + static_cast<int>(c % 4) * 200;
      const int y = kPanelHeight + 10 + static_cast<int>(c / 4) * 22;
      cv::line(image, cv::Point(x, y), cv::Point(x + 24, y), kColours[c % 10], 3, cv::LINE_AA);
      cv::putText(image, curves[c].name, cv::Point(x + 30, y + 5), kFont, 0.45, cv::Scalar(0, 0, 0),
                  1, cv::LINE_AA);
    }
  }
  return image;
}

}  // namespace attnkit::vision
