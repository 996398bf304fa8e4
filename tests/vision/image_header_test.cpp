// tests/vision/image_header_test.cpp: image sizes read from headers, and the pixel limit.
#include "vision/image/image_header.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "vision/errors.h"
#include "vision/image/image_io.h"

namespace attnkit::vision {
namespace {

// A non-square image in each format OpenCV writes, so width and height cannot be swapped
// unnoticed.
std::vector<unsigned char> encoded(const std::string& ext, int width, int height,
                                   std::vector<int> params = {}) {
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(10, 200, 30));
  std::vector<unsigned char> bytes;
  EXPECT_TRUE(cv::imencode(ext, image, bytes, params)) << ext;
  return bytes;
}

std::string load_error(const std::vector<unsigned char>& bytes, int64_t max_pixels) {
  try {
    decode_image_rgb(bytes, "x.img", max_pixels);
  } catch (const ImageError& e) {
    return e.what();
  }
  return "";
}

TEST(ImageHeader, ReadsTheSizeOfEveryFormatOpenCvWrites) {
  const std::vector<std::pair<std::string, std::vector<int>>> formats = {
      {".png", {}},  {".jpg", {}}, {".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}},
      {".bmp", {}},  {".ppm", {}}, {".pgm", {}},
      {".tiff", {}}, {".webp", {cv::IMWRITE_WEBP_QUALITY, 80}},
      {".webp", {cv::IMWRITE_WEBP_QUALITY, 101}},  // above 100: lossless (VP8L)
  };
  for (const auto& [ext, params] : formats) {
    const auto bytes = encoded(ext, 37, 23, params);
    const auto size = read_image_dimensions(bytes.data(), bytes.size());
    ASSERT_TRUE(size.has_value()) << ext;
    EXPECT_EQ(size->width, 37) << ext;
    EXPECT_EQ(size->height, 23) << ext;
  }
}

TEST(ImageHeader, NeverReadsPastTheBytesItIsGiven) {
  // Every prefix of every format: a size or nothing, never a read out of bounds (the bytes are
  // copied into an exact-size buffer so AddressSanitizer would see one).
  for (const std::string ext : {".png", ".jpg", ".bmp", ".ppm", ".tiff", ".webp"}) {
    const auto bytes = encoded(ext, 5, 3);
    for (size_t n = 0; n <= std::min<size_t>(bytes.size(), 400); ++n) {
      const std::vector<unsigned char> prefix(bytes.begin(), bytes.begin() + n);
      const auto size = read_image_dimensions(prefix.data(), prefix.size());
      if (size) {
        EXPECT_EQ(size->width, 5) << ext << " prefix " << n;
        EXPECT_EQ(size->height, 3) << ext << " prefix " << n;
      }
    }
  }
  const unsigned char text[] = "P6 12";  // a PNM header cut before its height
  EXPECT_FALSE(read_image_dimensions(text, 5).has_value());
  EXPECT_FALSE(read_image_dimensions(nullptr, 0).has_value());
}

TEST(ImageHeader, DecodeRefusesImagesAboveThePixelLimitBeforeDecoding) {
  for (const std::string ext : {".png", ".jpg", ".bmp", ".webp", ".tiff"}) {
    const auto bytes = encoded(ext, 37, 23);
    EXPECT_EQ(load_error(bytes, 37 * 23), "") << ext;
    const std::string error = load_error(bytes, 37 * 23 - 1);
    EXPECT_NE(error.find("x.img: image is too large: 37x23"), std::string::npos) << error;
    EXPECT_NE(error.find("--max-pixels"), std::string::npos) << error;
  }
}

TEST(ImageHeader, AHugeDeclaredSizeIsTooLargeNotCorrupt) {
  auto bytes = encoded(".png", 4, 4);
  // IHDR width and height (big-endian, bytes 16-23) rewritten to 100000 x 100000; the CRC no
  // longer matches, but the size is refused before libpng would look.
  for (size_t at : {16u, 20u}) {
    bytes[at] = 0x00;
    bytes[at + 1] = 0x01;
    bytes[at + 2] = 0x86;
    bytes[at + 3] = 0xA0;
  }
  const std::string error = load_error(bytes, 0);
  EXPECT_NE(error.find("too large: 100000x100000"), std::string::npos) << error;
}

TEST(ImageHeader, ProcessWideLimitAppliesWhenNoneIsGiven) {
  const auto bytes = encoded(".png", 20, 10);
  EXPECT_EQ(max_image_pixels(), kDefaultMaxImagePixels);
  set_max_image_pixels(199);
  EXPECT_NE(load_error(bytes, 0).find("too large"), std::string::npos);
  EXPECT_EQ(load_error(bytes, 200), "");  // an explicit limit wins
  set_max_image_pixels(kDefaultMaxImagePixels);
  EXPECT_EQ(load_error(bytes, 0), "");
  EXPECT_THROW(set_max_image_pixels(0), std::invalid_argument);
}

}  // namespace
}  // namespace attnkit::vision
