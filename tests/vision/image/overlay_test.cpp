// tests/vision/image/overlay_test.cpp: rendering attention maps: a hot cell lights its region of
// the original image through the preprocessing crop, sizes are kept (1x1 and very large included),
// colormaps, panels, and a golden image.
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "vision/image/image_io.h"
#include "vision/image/overlay.h"

namespace attnkit::vision {
namespace {

/// A (gh, gw) grid of zeros with one hot cell.
torch::Tensor hot_cell(int64_t gh, int64_t gw, int64_t row, int64_t column) {
  auto grid = torch::zeros({gh, gw});
  grid[row][column] = 1.0;
  return grid;
}

TEST(Overlay, HotCellLightsItsRegionOfTheWholeImage) {
  // A 4x3 grid over a 300x400 (w x h) image squashed to the input: the hot cell (2, 1) covers
  // x in [100, 200), y in [200, 300).
  const auto heat = map_to_image(hot_cell(4, 3, 2, 1), {0, 0, 300, 400}, cv::Size(300, 400));
  ASSERT_EQ(heat.size(), cv::Size(300, 400));
  ASSERT_EQ(heat.type(), CV_32F);
  cv::Point peak;
  double low = 0, high = 0;
  cv::minMaxLoc(heat, &low, &high, nullptr, &peak);
  EXPECT_NEAR(high, 1.0, 1e-3);
  EXPECT_NEAR(low, 0.0, 1e-6);
  EXPECT_TRUE(cv::Rect(100, 200, 100, 100).contains(peak)) << peak;
  EXPECT_GT(cv::mean(heat(cv::Rect(110, 210, 80, 80)))[0], 0.5);
  EXPECT_LT(cv::mean(heat(cv::Rect(0, 0, 100, 100)))[0], 0.05);
}

TEST(Overlay, UndoesTheCenterCropAndLeavesUnseenPixelsAlone) {
  // The model saw the centre 200x200 of a 400x200 image (resize shorter side, centre crop).
  const CropBox box{100, 0, 200, 200};
  cv::Mat seen;
  const auto heat = map_to_image(hot_cell(2, 2, 0, 1), box, cv::Size(400, 200), 0.0, &seen);
  cv::Point peak;
  cv::minMaxLoc(heat, nullptr, nullptr, nullptr, &peak);
  EXPECT_TRUE(cv::Rect(200, 0, 100, 100).contains(peak)) << peak;
  EXPECT_EQ(cv::countNonZero(seen), 200 * 200);
  EXPECT_EQ(cv::countNonZero(seen(cv::Rect(0, 0, 100, 200))), 0);

  const cv::Mat image(200, 400, CV_8UC3, cv::Scalar(90, 120, 30));
  OverlayStyle style;
  style.colorbar = false;
  const auto out = blend_heat(image, heat, style, seen);
  ASSERT_EQ(out.size(), image.size());
  cv::Mat diff;
  cv::absdiff(out(cv::Rect(0, 0, 100, 200)), image(cv::Rect(0, 0, 100, 200)), diff);
  EXPECT_EQ(cv::countNonZero(diff.reshape(1)), 0) << "pixels the model never saw were drawn on";
  cv::absdiff(out(cv::Rect(200, 0, 100, 100)), image(cv::Rect(200, 0, 100, 100)), diff);
  EXPECT_GT(cv::mean(diff)[0], 5.0);
}

TEST(Overlay, KeepsTheSizeOfTinyAndHugeImages) {
  OverlayStyle style;
  style.threshold = 0.5;
  for (const auto& size : {cv::Size(1, 1), cv::Size(3, 2), cv::Size(6000, 4000)}) {
    const cv::Mat image(size, CV_8UC3, cv::Scalar(10, 200, 10));
    const auto heat = map_to_image(hot_cell(14, 14, 3, 9),
                                   {0, 0, 1.0 * size.width, 1.0 * size.height}, size, 1.0);
    auto out = blend_heat(image, heat, style);
    draw_label(out, "Sneaker 98.1%");
    EXPECT_EQ(out.size(), size);
    EXPECT_EQ(out.type(), CV_8UC3);
  }
}

TEST(Overlay, LabelIsDrawnInTheCornerAtAnySize) {
  for (const int side : {32, 224, 2000}) {
    cv::Mat image(side, side, CV_8UC3, cv::Scalar(128, 128, 128));
    draw_label(image, "Ankle boot 91.2%");
    // Something white in the top-left band, nothing changed in the bottom-right quarter.
    const cv::Mat corner = image(cv::Rect(0, 0, side / 2, std::max(4, side / 8)));
    double high = 0;
    cv::minMaxLoc(corner.reshape(1), nullptr, &high);
    EXPECT_GT(high, 200) << side;
    cv::Mat changed;
    cv::absdiff(image(cv::Rect(side / 2, side / 2, side / 2, side / 2)), cv::Scalar(128, 128, 128),
                changed);
    EXPECT_EQ(cv::countNonZero(changed.reshape(1)), 0) << side;
  }
}

TEST(Overlay, ColormapsByNameAndClearErrors) {
  EXPECT_EQ(colormap_from_string("jet"), cv::COLORMAP_JET);
  EXPECT_EQ(colormap_from_string("viridis"), cv::COLORMAP_VIRIDIS);
  EXPECT_EQ(colormap_from_string("turbo"), cv::COLORMAP_TURBO);
  EXPECT_EQ(colormap_from_string("inferno"), cv::COLORMAP_INFERNO);
  try {
    colormap_from_string("rainbowz");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("viridis"), std::string::npos) << e.what();
  }
}

TEST(Overlay, PanelsTileEveryMapWithItsTitle) {
  std::vector<cv::Mat> tiles(5, cv::Mat(40, 80, CV_8UC3, cv::Scalar(0, 0, 0)));
  const auto panel = tile_panels(tiles, {"a", "bag", "above", "a", "dress"}, 160, 3);
  // 3 columns x 2 rows of 160x80 tiles with titles below and gaps.
  EXPECT_GE(panel.cols, 3 * 160);
  EXPECT_LT(panel.cols, 3 * 160 + 40);
  EXPECT_GE(panel.rows, 2 * 80);
  EXPECT_THROW(tile_panels(tiles, {"too", "few"}, 160), c10::Error);
}

// The overlay of a fixed map on a fixed image equals the committed golden image within 2 grey
// levels on average (OpenCV's bicubic and anti-aliased text may differ by a level between builds;
// a change of colormap, normalisation, crop or layout moves it by far more).
TEST(Overlay, MatchesTheGoldenImage) {
  cv::Mat image(120, 160, CV_8UC3);
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(x), static_cast<uchar>(2 * y), 90);
    }
  }
  auto grid = torch::arange(12, torch::kFloat).reshape({3, 4}).pow(2);
  cv::Mat seen;
  const auto heat = map_to_image(grid, {20, 0, 120, 120}, image.size(), 0.5, &seen);
  OverlayStyle style;
  style.colormap = colormap_from_string("viridis");
  style.alpha = 0.6;
  style.threshold = 0.7;
  auto out = blend_heat(image, heat, style, seen);
  draw_label(out, "golden 42.0%");
  const std::string golden = std::string(ATTNKIT_SOURCE_DIR) + "/samples/golden/overlay.png";
  if (std::getenv("ATTNKIT_UPDATE_GOLDEN")) save_image_rgb(golden, out);
  const auto expected = load_image_rgb(golden);
  ASSERT_EQ(expected.size(), out.size());
  cv::Mat diff;
  cv::absdiff(expected, out, diff);
  const double mean = cv::mean(diff.reshape(1))[0];
  std::cout << "[golden] mean abs difference " << mean << " grey levels" << std::endl;
  EXPECT_LE(mean, 2.0);
}

}  // namespace
}  // namespace attnkit::vision
