// vision/image/confusion_plot.cpp: the confusion-matrix plot with OpenCV drawing.
#include "vision/image/confusion_plot.h"

#include <algorithm>

#include <torch/torch.h>
#include <opencv2/imgproc.hpp>

namespace attnkit::vision {

cv::Mat draw_confusion_matrix(const torch::Tensor& confusion,
                              const std::vector<std::string>& classes) {
  const int64_t k = confusion.size(0);
  TORCH_CHECK(
      confusion.dim() == 2 && confusion.size(1) == k && static_cast<int64_t>(classes.size()) == k,
      "draw_confusion_matrix: expected (K, K) counts and K names, got ", confusion.sizes(), " and ",
      classes.size());
  const int cell = 56, font = cv::FONT_HERSHEY_SIMPLEX;
  int label_width = 0;
  for (const auto& name : classes) {
    int baseline = 0;
    label_width = std::max(label_width, cv::getTextSize(name, font, 0.5, 1, &baseline).width);
  }
  const int left = label_width + 20, top = 40, bottom = label_width + 30;
  const int size = static_cast<int>(k) * cell;
  cv::Mat image(top + size + bottom, left + size + 20, CV_8UC3, cv::Scalar(255, 255, 255));
  auto counts = confusion.to(torch::kLong).contiguous();
  auto c = counts.accessor<int64_t, 2>();
  cv::Mat rates(1, static_cast<int>(k * k), CV_8UC1);
  for (int64_t i = 0; i < k; ++i) {
    int64_t row = 0;
    for (int64_t j = 0; j < k; ++j) row += c[i][j];
    for (int64_t j = 0; j < k; ++j) {
      rates.at<uint8_t>(0, static_cast<int>(i * k + j)) =
          static_cast<uint8_t>(row ? std::lround(255.0 * c[i][j] / row) : 0);
    }
  }
  cv::Mat colours;
  cv::applyColorMap(rates, colours, cv::COLORMAP_VIRIDIS);  // BGR
  cv::cvtColor(colours, colours, cv::COLOR_BGR2RGB);
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const cv::Rect box(left + static_cast<int>(j) * cell, top + static_cast<int>(i) * cell, cell,
                         cell);
      const auto colour = colours.at<cv::Vec3b>(0, static_cast<int>(i * k + j));
      cv::rectangle(image, box, cv::Scalar(colour[0], colour[1], colour[2]), cv::FILLED);
      const std::string text = std::to_string(c[i][j]);
      int baseline = 0;
      const auto extent = cv::getTextSize(text, font, 0.42, 1, &baseline);
      const bool dark = rates.at<uint8_t>(0, static_cast<int>(i * k + j)) < 140;
      cv::putText(image, text,
                  {box.x + (cell - extent.width) / 2, box.y + (cell + extent.height) / 2}, font,
                  0.42, dark ? cv::Scalar(255, 255, 255) : cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    }
    cv::putText(image, classes[i], {8, top + static_cast<int>(i) * cell + cell / 2 + 5}, font, 0.5,
                cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  // Column labels, rotated: drawn horizontally on a strip, then turned 90 degrees.
  cv::Mat strip(cell * static_cast<int>(k), bottom - 10, CV_8UC3, cv::Scalar(255, 255, 255));
  for (int64_t j = 0; j < k; ++j) {
    int baseline = 0;
    const auto extent = cv::getTextSize(classes[j], font, 0.5, 1, &baseline);
    cv::putText(strip, classes[j],
                {strip.cols - extent.width - 4, static_cast<int>(j) * cell + cell / 2 + 5}, font,
                0.5, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  cv::Mat rotated;
  cv::rotate(strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
  rotated.copyTo(image(cv::Rect(left, top + size + 10, rotated.cols, rotated.rows)));
  cv::putText(image, "true class (rows) vs predicted (columns)", {8, 26}, font, 0.55,
              cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  return image;
}

}  // namespace attnkit::vision
