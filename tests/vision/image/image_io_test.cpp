// tests/vision/image/image_io_test.cpp: image loading errors, colour handling and atomic writes.
#include "vision/image/image_io.h"

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "vision/errors.h"

namespace attnkit::vision {
namespace {

namespace fs = std::filesystem;

// True when `text` contains `part` (gmock is not linked into the test binaries).
::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

class ImageIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "attnkit_image_io_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write_bytes(const std::string& name, const std::vector<unsigned char>& bytes) {
    const std::string p = path(name);
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return p;
  }

  // The ImageError message load_image_rgb throws for `p`, or "" when it does not throw.
  static std::string load_error(const std::string& p) {
    try {
      load_image_rgb(p);
    } catch (const ImageError& e) {
      return e.what();
    }
    return "";
  }

  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

  fs::path dir_;
};

// A BGR test card: each pixel distinct, so channel swaps and transpositions show.
cv::Mat test_card_bgr(int width, int height) {
  cv::Mat bgr(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      bgr.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<uint8_t>(x * 7 + y), static_cast<uint8_t>(y * 11 + 3),
                    static_cast<uint8_t>(x * 3 + y * 5));
    }
  }
  return bgr;
}

std::vector<unsigned char> encode(const std::string& ext, const cv::Mat& image,
                                  const std::vector<int>& params = {}) {
  std::vector<unsigned char> bytes;
  EXPECT_TRUE(cv::imencode(ext, image, bytes, params));
  return bytes;
}

TEST_F(ImageIoTest, MissingFile) {
  EXPECT_EQ(load_error(path("a.jpg")), path("a.jpg") + ": no such file");
}

TEST_F(ImageIoTest, Directory) {
  fs::create_directory(path("photos"));
  EXPECT_EQ(load_error(path("photos")), path("photos") + ": is a directory");
}

TEST_F(ImageIoTest, EmptyFile) {
  const std::string p = write_bytes("empty.png", {});
  EXPECT_EQ(load_error(p), p + ": empty file");
}

TEST_F(ImageIoTest, GarbageWithPngExtensionReportsBrokenSignature) {
  const std::string p = write_bytes("x.png", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l'});
  EXPECT_EQ(load_error(p), p + ": not a decodable image (PNG signature broken)");
}

TEST_F(ImageIoTest, GarbageWithJpegExtensionReportsBrokenSignature) {
  const std::string p = write_bytes("x.JPG", std::vector<unsigned char>(64, 0x42));
  EXPECT_EQ(load_error(p), p + ": not a decodable image (JPEG signature broken)");
}

TEST_F(ImageIoTest, GarbageWithOtherExtensionIsUnknownFormat) {
  const std::string p = write_bytes("x.dat", std::vector<unsigned char>(64, 0x42));
  EXPECT_EQ(load_error(p), p + ": not a decodable image (unknown format)");
}

TEST_F(ImageIoTest, TruncatedPng) {
  std::vector<unsigned char> bytes = encode(".png", test_card_bgr(64, 48));
  bytes.resize(bytes.size() / 2);
  const std::string p = write_bytes("cut.png", bytes);
  EXPECT_EQ(load_error(p), p + ": not a decodable image (truncated or corrupt PNG data)");
}

TEST_F(ImageIoTest, TruncatedJpegIsRejectedLikePil) {
  // OpenCV decodes this, filling the missing rows with grey; PIL refuses it.
  cv::Mat noise(96, 128, CV_8UC3);
  cv::randu(noise, 0, 256);
  std::vector<unsigned char> bytes = encode(".jpg", noise);
  bytes.resize(bytes.size() * 9 / 10);
  const std::string p = write_bytes("cut.jpg", bytes);
  EXPECT_EQ(load_error(p), p + ": not a decodable image (truncated JPEG data)");

  std::vector<unsigned char> no_eoi = encode(".jpg", noise);
  no_eoi.resize(no_eoi.size() - 2);
  EXPECT_TRUE(Contains(load_error(write_bytes("no_eoi.jpg", no_eoi)), "(truncated JPEG data)"));
}

TEST_F(ImageIoTest, CorruptJpegHeader) {
  const std::string p = write_bytes("bad.jpg", {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 0x01, 0x02});
  EXPECT_EQ(load_error(p), p + ": not a decodable image (truncated or corrupt JPEG data)");
}

TEST_F(ImageIoTest, GifIsNotSupported) {
  const std::string p = write_bytes("anim.gif", {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0});
  EXPECT_EQ(load_error(p), p + ": GIF is not supported (convert it to PNG or JPEG)");
}

TEST_F(ImageIoTest, ZeroSizedPngIsRejected) {
  std::vector<unsigned char> bytes = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n',  // signature
                                      0,    0,   0,   13,  'I',  'H',  'D',  'R',   // chunk header
                                      0,    0,   0,   0,   0,    0,    0,    1,     // 0 x 1
                                      8,    2,   0,   0,   0,    0,    0,    0,
                                      0};  // rest + crc
  const std::string p = write_bytes("zero.png", bytes);
  EXPECT_EQ(load_error(p), p + ": image has zero width or height");
}

TEST_F(ImageIoTest, ColourPngLoadsAsRgb) {
  const cv::Mat bgr = test_card_bgr(13, 7);
  const std::string p = write_bytes("card.png", encode(".png", bgr));
  const cv::Mat rgb = load_image_rgb(p);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  ASSERT_EQ(rgb.size(), bgr.size());
  for (int y = 0; y < bgr.rows; ++y) {
    for (int x = 0; x < bgr.cols; ++x) {
      const cv::Vec3b b = bgr.at<cv::Vec3b>(y, x);
      EXPECT_EQ(rgb.at<cv::Vec3b>(y, x), cv::Vec3b(b[2], b[1], b[0])) << x << "," << y;
    }
  }
}

TEST_F(ImageIoTest, GreyPngExpandsToRgb) {
  cv::Mat grey(5, 6, CV_8UC1);
  for (int i = 0; i < 30; ++i) grey.at<uint8_t>(i / 6, i % 6) = static_cast<uint8_t>(i * 8);
  const std::string p = write_bytes("grey.png", encode(".png", grey));
  const cv::Mat rgb = load_image_rgb(p);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  for (int i = 0; i < 30; ++i) {
    const uint8_t v = static_cast<uint8_t>(i * 8);
    EXPECT_EQ(rgb.at<cv::Vec3b>(i / 6, i % 6), cv::Vec3b(v, v, v));
  }
}

TEST_F(ImageIoTest, RgbaPngDropsAlphaWithoutCompositing) {
  // PIL convert("RGB") discards alpha; fully transparent pixels keep their colour.
  cv::Mat bgra(2, 2, CV_8UC4);
  bgra.at<cv::Vec4b>(0, 0) = {10, 20, 30, 0};
  bgra.at<cv::Vec4b>(0, 1) = {40, 50, 60, 128};
  bgra.at<cv::Vec4b>(1, 0) = {70, 80, 90, 255};
  bgra.at<cv::Vec4b>(1, 1) = {255, 0, 127, 1};
  const cv::Mat rgb = load_image_rgb(write_bytes("alpha.png", encode(".png", bgra)));
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(30, 20, 10));
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 1), cv::Vec3b(60, 50, 40));
  EXPECT_EQ(rgb.at<cv::Vec3b>(1, 0), cv::Vec3b(90, 80, 70));
  EXPECT_EQ(rgb.at<cv::Vec3b>(1, 1), cv::Vec3b(127, 0, 255));
}

TEST_F(ImageIoTest, AppliesExifOrientation) {
  // 40x20: left half red, right half blue. EXIF orientation 6 = rotate 90 degrees clockwise
  // for display, so the loaded image is 20x40 with red on top.
  cv::Mat bgr(20, 40, CV_8UC3, cv::Scalar(0, 0, 255));
  bgr.colRange(20, 40).setTo(cv::Scalar(255, 0, 0));
  std::vector<unsigned char> jpeg = encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, 95});
  const std::vector<unsigned char> app1 = {
      0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0,    0,  // APP1, length 34
      'M',  'M',  0x00, 0x2A, 0,   0,   0,   8,             // big-endian TIFF header, IFD at 8
      0x00, 0x01,                                           // one entry
      0x01, 0x12, 0x00, 0x03, 0,   0,   0,   1,   0x00, 0x06,
      0,    0,               // Orientation, SHORT, 1, value 6
      0,    0,    0,    0};  // no next IFD
  jpeg.insert(jpeg.begin() + 2, app1.begin(), app1.end());
  const cv::Mat rgb = decode_image_rgb(jpeg, "rotated.jpg");
  ASSERT_EQ(rgb.cols, 20);
  ASSERT_EQ(rgb.rows, 40);
  const cv::Vec3b top = rgb.at<cv::Vec3b>(5, 10);
  const cv::Vec3b bottom = rgb.at<cv::Vec3b>(35, 10);
  EXPECT_GT(top[0], 200);  // red
  EXPECT_LT(top[2], 60);
  EXPECT_GT(bottom[2], 200);  // blue
  EXPECT_LT(bottom[0], 60);
}

TEST_F(ImageIoTest, DecodeUsesNameInErrors) {
  try {
    decode_image_rgb({1, 2, 3, 4}, "upload.png");
    FAIL() << "no error";
  } catch (const ImageError& e) {
    EXPECT_STREQ(e.what(), "upload.png: not a decodable image (PNG signature broken)");
  }
  EXPECT_THROW(decode_image_rgb({}, "x"), ImageError);
}

TEST_F(ImageIoTest, HugeDeclaredSizesAreRefusedWithoutOverflow) {
  // Found by fuzzing: a TIFF declaring 2684373512 x 4294967224, a product beyond int64.
  const std::vector<unsigned char> tiff = {
      'I', 'I', 42, 0, 8, 0, 0, 0, 2,    0,                 // header, first IFD: 2 entries
      0,   1,   4,  0, 1, 0, 0, 0, 0x08, 0x4a, 0x00, 0xa0,  // ImageWidth, LONG
      1,   1,   4,  0, 1, 0, 0, 0, 0xb8, 0xff, 0xff, 0xff,  // ImageLength, LONG
      0,   0,   0,  0};
  try {
    decode_image_rgb(tiff, "huge.tiff");
    FAIL() << "no error";
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("huge.tiff: image is too large: 2684373512x4294967224 "
                                         "(11529296251013.8 megapixels)"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(ImageIoTest, SavePngRoundTripsExactly) {
  const cv::Mat rgb = test_card_bgr(17, 9);  // any 3-channel content will do
  const cv::Mat before = rgb.clone();
  save_image_rgb(path("out.png"), rgb);
  EXPECT_EQ(cv::norm(rgb, before, cv::NORM_INF), 0.0) << "the caller's image was modified";
  const cv::Mat back = load_image_rgb(path("out.png"));
  EXPECT_EQ(cv::norm(back, rgb, cv::NORM_INF), 0.0);
  EXPECT_EQ(listing(), std::vector<std::string>{"out.png"});
}

TEST_F(ImageIoTest, SaveJpegKeepsColourOrder) {
  cv::Mat rgb(32, 32, CV_8UC3, cv::Scalar(200, 30, 60));  // mostly red in RGB order
  save_image_rgb(path("out.jpeg"), rgb);
  const cv::Mat back = load_image_rgb(path("out.jpeg"));
  ASSERT_EQ(back.size(), rgb.size());
  EXPECT_LT(cv::norm(back, rgb, cv::NORM_L1) / back.total() / 3, 3.0);
  const std::vector<unsigned char> head = [&] {
    std::ifstream in(path("out.jpeg"), std::ios::binary);
    std::vector<unsigned char> b(3);
    in.read(reinterpret_cast<char*>(b.data()), 3);
    return b;
  }();
  EXPECT_EQ(head, (std::vector<unsigned char>{0xFF, 0xD8, 0xFF}));
}

TEST_F(ImageIoTest, SaveGreyAndOtherFormats) {
  cv::Mat grey(4, 4, CV_8UC1, cv::Scalar(77));
  save_image_rgb(path("grey.png"), grey);
  EXPECT_EQ(load_image_rgb(path("grey.png")).at<cv::Vec3b>(2, 2), cv::Vec3b(77, 77, 77));
  const cv::Mat rgb = test_card_bgr(8, 8);
  save_image_rgb(path("card.BMP"), rgb);
  EXPECT_EQ(cv::norm(load_image_rgb(path("card.BMP")), rgb, cv::NORM_INF), 0.0);
  save_image_rgb(path("card.webp"), rgb);
  EXPECT_EQ(load_image_rgb(path("card.webp")).size(), rgb.size());
}

TEST_F(ImageIoTest, SaveReplacesAnExistingFile) {
  save_image_rgb(path("out.png"), cv::Mat(4, 4, CV_8UC3, cv::Scalar(1, 2, 3)));
  save_image_rgb(path("out.png"), cv::Mat(6, 5, CV_8UC3, cv::Scalar(4, 5, 6)));
  const cv::Mat back = load_image_rgb(path("out.png"));
  EXPECT_EQ(back.size(), cv::Size(5, 6));
  EXPECT_EQ(back.at<cv::Vec3b>(0, 0), cv::Vec3b(4, 5, 6));
  EXPECT_EQ(listing(), std::vector<std::string>{"out.png"});
}

TEST_F(ImageIoTest, SaveRejectsUnknownExtension) {
  const cv::Mat rgb(4, 4, CV_8UC3, cv::Scalar(0));
  try {
    save_image_rgb(path("out.xyz"), rgb);
    FAIL() << "no error";
  } catch (const ImageError& e) {
    EXPECT_EQ(std::string(e.what()),
              path("out.xyz") +
                  ": unknown image extension \".xyz\" (use .png, .jpg, .jpeg, "
                  ".webp or .bmp)");
  }
  EXPECT_THROW(save_image_rgb(path("noext"), rgb), ImageError);
  EXPECT_THROW(save_image_rgb(path("anim.gif"), rgb), ImageError);
  EXPECT_TRUE(listing().empty());
}

TEST_F(ImageIoTest, SaveRejectsBadImages) {
  EXPECT_THROW(save_image_rgb(path("a.png"), cv::Mat()), ImageError);
  EXPECT_THROW(save_image_rgb(path("a.png"), cv::Mat(2, 2, CV_32FC3, cv::Scalar(0))), ImageError);
  EXPECT_TRUE(listing().empty());
}

TEST_F(ImageIoTest, FailedWriteLeavesNoTemporary) {
  // The target is a directory: the rename fails after the temporary was written.
  fs::create_directory(path("taken.png"));
  const cv::Mat rgb(4, 4, CV_8UC3, cv::Scalar(9));
  try {
    save_image_rgb(path("taken.png"), rgb);
    FAIL() << "no error";
  } catch (const ImageError& e) {
    EXPECT_TRUE(Contains(e.what(), path("taken.png") + ": cannot write: is a directory"));
  }
  EXPECT_EQ(listing(), std::vector<std::string>{"taken.png"});

  // The directory does not exist: nothing can be created at all.
  EXPECT_THROW(save_image_rgb(path("missing/out.png"), rgb), ImageError);
  EXPECT_EQ(listing(), std::vector<std::string>{"taken.png"});
}

TEST(HasImageExtension, KnownAndUnknown) {
  EXPECT_TRUE(has_image_extension("a.jpg"));
  EXPECT_TRUE(has_image_extension("dir.d/B.JPEG"));
  EXPECT_TRUE(has_image_extension("x.png"));
  EXPECT_TRUE(has_image_extension("scan.tiff"));
  EXPECT_TRUE(has_image_extension("p.webp"));
  EXPECT_TRUE(has_image_extension("p.pgm"));
  EXPECT_FALSE(has_image_extension("anim.gif"));
  EXPECT_FALSE(has_image_extension("notes.txt"));
  EXPECT_FALSE(has_image_extension("png"));
  EXPECT_FALSE(has_image_extension("dir.png/file"));
  EXPECT_FALSE(has_image_extension(""));
}

TEST(LoadSamples, EverySampleLoads) {
  const fs::path samples = fs::path(ATTNKIT_SOURCE_DIR) / "samples";
  int loaded = 0;
  for (const auto& entry : fs::directory_iterator(samples)) {
    if (!has_image_extension(entry.path().string())) continue;
    const cv::Mat rgb = load_image_rgb(entry.path().string());
    EXPECT_EQ(rgb.type(), CV_8UC3) << entry.path();
    EXPECT_GE(std::min(rgb.rows, rgb.cols), 200) << entry.path();
    ++loaded;
  }
  EXPECT_GE(loaded, 4);
}

}  // namespace
}  // namespace attnkit::vision
