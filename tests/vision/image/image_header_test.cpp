// tests/vision/image/image_header_test.cpp: image sizes read from headers, and the pixel limit.
#include "vision/image/image_header.h"

#include <array>
#include <cstddef>
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
  const bool grey = ext == ".pgm";  // OpenCV writes PGM from grey images only
  cv::Mat image(height, width, grey ? CV_8UC1 : CV_8UC3, cv::Scalar(10, 200, 30));
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
      {".png", {}},
      {".jpg", {}},
      {".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}},
      {".bmp", {}},
      {".ppm", {}},
      {".pgm", {}},
      {".tiff", {}},
      {".webp", {cv::IMWRITE_WEBP_QUALITY, 80}},
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
    // The library names no option; a program says how its users raise the limit.
    EXPECT_EQ(error.find("--max-pixels"), std::string::npos) << error;
    set_pixel_limit_hint("--max-pixels");
    const std::string hinted = load_error(bytes, 37 * 23 - 1);
    set_pixel_limit_hint(nullptr);
    EXPECT_NE(hinted.find("(--max-pixels)"), std::string::npos) << hinted;
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

// An image's bytes with `inserted` placed at `at`.
std::vector<unsigned char> with_bytes(std::vector<unsigned char> bytes, size_t at,
                                      const std::vector<unsigned char>& inserted) {
  bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), inserted.begin(), inserted.end());
  return bytes;
}

TEST(ImageHeader, AJpegSegmentWithALengthBelowTwoDoesNotHideTheFrame) {
  // libjpeg reads an APP0 of length 0 as empty and goes on to the frame right after its length
  // field; the header reading must find that frame too (found by fuzzing: a progressive JPEG
  // behind such a segment allocated 2.9 GB before any limit was checked).
  const auto bytes = with_bytes(encoded(".jpg", 37, 23), 2, {0xFF, 0xE0, 0x00, 0x00});
  const auto size = read_image_dimensions(bytes.data(), bytes.size());
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(size->width, 37);
  EXPECT_EQ(size->height, 23);
  const cv::Mat rgb = decode_image_rgb(bytes, "x.jpg");
  EXPECT_EQ(rgb.cols, 37);
  EXPECT_EQ(rgb.rows, 23);
  EXPECT_NE(load_error(bytes, 37 * 23 - 1).find("too large: 37x23"), std::string::npos);
}

TEST(ImageHeader, PnmNumbersEndAtAnyByteAsInOpenCv) {
  // OpenCV's PxM reader ends a number at any non-digit and consumes it: "9913=101941" is
  // 9913 x 101941 (found by fuzzing, where it was a 1-gigapixel allocation).
  const std::string text = "P5\n\n9913=101941`12\n";
  const std::vector<unsigned char> bytes(text.begin(), text.end());
  const auto size = read_image_dimensions(bytes.data(), bytes.size());
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(size->width, 9913);
  EXPECT_EQ(size->height, 101941);
  EXPECT_NE(load_error(bytes, 0).find("too large: 9913x101941"), std::string::npos);

  const std::string commented = "P6 # a comment\r7\t#another\n 5 255\n";
  const auto c = read_image_dimensions(reinterpret_cast<const unsigned char*>(commented.data()),
                                       commented.size());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->width, 7);
  EXPECT_EQ(c->height, 5);
  const std::string no_space = "P6#x\n7 5 255\n";  // not a PxM signature for OpenCV
  EXPECT_FALSE(read_image_dimensions(reinterpret_cast<const unsigned char*>(no_space.data()),
                                     no_space.size())
                   .has_value());
}

// A TIFF or BigTIFF whose first IFD holds `entries` of (tag, type, value), values inline.
std::vector<unsigned char> tiff(bool big, const std::vector<std::array<uint64_t, 3>>& entries) {
  std::vector<unsigned char> b;
  auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
  };
  b = {'I', 'I', static_cast<unsigned char>(big ? 43 : 42), 0};
  if (big) {
    put(8, 2);
    put(0, 2);
    put(16, 8);  // first IFD right after the header
    put(entries.size(), 8);
  } else {
    put(8, 4);
    put(entries.size(), 2);
  }
  for (const auto& [tag, type, value] : entries) {
    put(tag, 2);
    put(type, 2);
    put(1, big ? 8 : 4);
    put(value, big ? 8 : 4);
  }
  put(0, big ? 8 : 4);  // no next IFD
  return b;
}

TEST(ImageHeader, TiffSizesOfEveryIntegerTypeAndBigTiff) {
  struct Case {
    bool big;
    std::vector<std::array<uint64_t, 3>> entries;
    int64_t width, height;
  };
  const std::vector<Case> cases = {
      {false, {{256, 1, 200}, {257, 8, 3000}}, 200, 3000},             // BYTE, SSHORT
      {false, {{256, 9, 70000}, {257, 4, 90000}}, 70000, 90000},       // SLONG, LONG
      {false, {{256, 3, 5}, {256, 3, 60000}, {257, 3, 7}}, 60000, 7},  // twice: the larger
      {true, {{256, 16, 100000}, {257, 4, 100000}}, 100000, 100000},   // BigTIFF, LONG8
      {true, {{256, 3, 12}, {257, 17, 34}}, 12, 34},                   // BigTIFF, SLONG8
  };
  for (const auto& c : cases) {
    const auto bytes = tiff(c.big, c.entries);
    const auto size = read_image_dimensions(bytes.data(), bytes.size());
    ASSERT_TRUE(size.has_value()) << c.width << "x" << c.height;
    EXPECT_EQ(size->width, c.width);
    EXPECT_EQ(size->height, c.height);
  }
  const std::string error = load_error(tiff(true, {{256, 16, 100000}, {257, 4, 100000}}), 0);
  EXPECT_NE(error.find("too large: 100000x100000"), std::string::npos) << error;
  // A negative signed size or a missing height: libtiff refuses the file, and so does attnkit.
  const auto negative = tiff(false, {{256, 8, 0xFFFF}, {257, 3, 4}});
  EXPECT_FALSE(read_image_dimensions(negative.data(), negative.size()).has_value());
  const auto no_height = tiff(false, {{256, 3, 4}});
  EXPECT_FALSE(read_image_dimensions(no_height.data(), no_height.size()).has_value());
  EXPECT_NE(load_error(no_height, 0).find("not a decodable image (truncated or corrupt TIFF"),
            std::string::npos);
}

TEST(ImageHeader, BytesWithNoSizeAttnkitReadsNeverReachADecoder) {
  // A lossless WebP bitstream without its RIFF container: OpenCV's WebP decoder takes it
  // (libwebp accepts bare VP8L), attnkit reads no size from it and refuses it.
  cv::Mat noise(23, 37, CV_8UC3);
  cv::randu(noise, 0, 256);  // noise: more than the 32 bytes OpenCV reads as a signature
  std::vector<unsigned char> webp;
  ASSERT_TRUE(cv::imencode(".webp", noise, webp, {cv::IMWRITE_WEBP_QUALITY, 101}));
  const std::vector<unsigned char> bare(webp.begin() + 20, webp.end());
  ASSERT_EQ(bare.front(), 0x2F);
  ASSERT_EQ(cv::imdecode(bare, cv::IMREAD_COLOR).cols, 37);  // what OpenCV alone would do
  EXPECT_EQ(load_error(bare, 0), "x.img: not a decodable image (unknown format)");
}

TEST(ImageHeader, FormatsWithoutAReadableSizeAreNamedAsUnsupported) {
  const std::vector<std::pair<std::string, std::vector<unsigned char>>> formats = {
      {"JPEG 2000", {0, 0, 0, 0x0c, 'j', 'P', ' ', ' ', '\r', '\n', 0x87, '\n', 0, 0}},
      {"JPEG 2000", {0xff, 0x4f, 0xff, 0x51, 0, 0}},
      {"OpenEXR", {0x76, 0x2f, 0x31, 0x01, 2, 0}},
      {"Radiance HDR", {'#', '?', 'R', 'A', 'D', 'I', 'A', 'N', 'C', 'E', '\n'}},
      {"PFM", {'P', 'F', '\n', '2', ' ', '2', '\n'}},
      {"PAM", {'P', '7', '\n', 'W', 'I', 'D', 'T', 'H', ' ', '2', '\n'}},
      {"Sun raster", {0x59, 0xa6, 0x6a, 0x95, 0, 0, 0, 2}},
      {"GIF", {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0}},
  };
  for (const auto& [format, bytes] : formats) {
    EXPECT_EQ(load_error(bytes, 0),
              "x.img: " + format + " is not supported (convert it to PNG or JPEG)");
  }
}

}  // namespace
}  // namespace attnkit::vision
