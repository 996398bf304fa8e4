// tests/vision/image/preprocess_test.cpp: PIL-exact resizing and the eval transform vs
// PIL/torchvision.
#include "vision/image/preprocess.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "tests/vision/oracle_skip.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"

namespace attnkit::vision {
namespace {

namespace fs = std::filesystem;

// The 5x3 grey image the PIL goldens below were computed from:
//   Image.fromarray(np.array(kTiny, np.uint8), "L").resize(size, filter)   (PIL 9.4)
const std::vector<uint8_t> kTiny = {0,   40,  200, 90,  255,  //
                                    30,  120, 60,  250, 10,   //
                                    220, 15,  128, 77,  190};

cv::Mat tiny_image() { return cv::Mat(3, 5, CV_8UC1, const_cast<uint8_t*>(kTiny.data())).clone(); }

std::vector<uint8_t> pixels(const cv::Mat& m) {
  const cv::Mat c = m.isContinuous() ? m : m.clone();
  return std::vector<uint8_t>(c.datastart, c.dataend);
}

struct Golden {
  Interpolation interpolation;
  int width, height;
  std::vector<uint8_t> expected;
};

TEST(ResizeLikePil, MatchesPilGoldens) {
  const std::vector<Golden> goldens = {
      // Downscale 5x3 -> 2x2.
      {Interpolation::kNearest, 2, 2, {40, 90, 15, 77}},
      {Interpolation::kBox, 2, 2, {75, 152, 121, 134}},
      {Interpolation::kBilinear, 2, 2, {73, 150, 100, 123}},
      {Interpolation::kHamming, 2, 2, {61, 157, 99, 127}},
      {Interpolation::kBicubic, 2, 2, {66, 157, 101, 121}},
      {Interpolation::kLanczos, 2, 2, {64, 161, 102, 117}},
      // Upscale 5x3 -> 7x4.
      {Interpolation::kNearest, 7, 4, {0,  40,  40,  200, 90,  90,  255, 30, 120, 120,
                                       60, 250, 250, 10,  30,  120, 120, 60, 250, 250,
                                       10, 220, 15,  15,  128, 77,  77,  190}},
      {Interpolation::kBox, 7, 4, {0,  40,  40,  200, 90,  90,  255, 30, 120, 120,
                                   60, 250, 250, 10,  30,  120, 120, 60, 250, 250,
                                   10, 220, 15,  15,  128, 77,  77,  190}},
      {Interpolation::kBilinear, 7, 4, {0,   23,  86,  200, 121, 161, 255, 19, 59,  97,
                                        113, 168, 152, 102, 101, 89,  82,  86, 157, 139,
                                        78,  220, 103, 47,  128, 92,  125, 190}},
      {Interpolation::kHamming, 7, 4, {0,  26,  57,  200, 102, 146, 255, 23, 75,  100,
                                       93, 199, 164, 67,  74,  89,  93,  76, 195, 156,
                                       52, 220, 84,  27,  128, 83,  115, 190}},
      {Interpolation::kBicubic, 7, 4, {0,   8,   84,  207, 103, 155, 255, 1,  56,  104,
                                       107, 188, 159, 81,  104, 94,  79,  76, 177, 144,
                                       56,  243, 99,  25,  132, 77,  121, 207}},
      {Interpolation::kLanczos, 7, 4, {4,   0,   94,  211, 93,  149, 255, 0,  51,  111,
                                       109, 199, 162, 78,  114, 105, 68,  69, 188, 145,
                                       47,  254, 96,  13,  136, 71,  118, 220}},
      // Down in x, up in y: 5x3 -> 3x5.
      {Interpolation::kNearest,
       3,
       5,
       {0, 200, 255, 0, 200, 255, 30, 60, 10, 220, 128, 190, 220, 128, 190}},
      {Interpolation::kBox,
       3,
       5,
       {20, 200, 173, 20, 200, 173, 75, 60, 130, 118, 128, 134, 118, 128, 134}},
      {Interpolation::kBilinear,
       3,
       5,
       {17, 140, 184, 38, 130, 156, 69, 116, 113, 107, 102, 130, 132, 92, 142}},
      {Interpolation::kHamming,
       3,
       5,
       {15, 161, 193, 29, 143, 167, 64, 96, 100, 121, 102, 134, 143, 105, 147}},
      {Interpolation::kBicubic,
       3,
       5,
       {11, 140, 194, 29, 136, 161, 63, 125, 114, 111, 96, 131, 138, 79, 147}},
      {Interpolation::kLanczos,
       3,
       5,
       {15, 133, 198, 22, 141, 161, 56, 135, 114, 112, 93, 130, 141, 65, 156}},
  };
  const cv::Mat tiny = tiny_image();
  for (const Golden& g : goldens) {
    const cv::Mat out = resize_like_pil(tiny, g.width, g.height, g.interpolation);
    ASSERT_EQ(out.type(), CV_8UC1);
    ASSERT_EQ(out.size(), cv::Size(g.width, g.height));
    EXPECT_EQ(pixels(out), g.expected)
        << to_string(g.interpolation) << " " << g.width << "x" << g.height;
  }
}

TEST(ResizeLikePil, MatchesPilGoldensRgb) {
  // Image.fromarray([[red, green], [blue, white]]).resize(...)
  const cv::Mat rgb = (cv::Mat_<cv::Vec3b>(2, 2) << cv::Vec3b(255, 0, 0), cv::Vec3b(0, 255, 0),
                       cv::Vec3b(0, 0, 255), cv::Vec3b(255, 255, 255));
  EXPECT_EQ(pixels(resize_like_pil(rgb, 3, 1, Interpolation::kBicubic)),
            (std::vector<uint8_t>{128, 0, 128, 128, 128, 128, 128, 255, 128}));
  EXPECT_EQ(
      pixels(resize_like_pil(rgb, 3, 3, Interpolation::kBilinear)),
      (std::vector<uint8_t>{255, 0,   0,   128, 128, 0, 0,   255, 0,   128, 0,   128, 128, 128,
                            128, 128, 255, 128, 0,   0, 255, 128, 128, 255, 255, 255, 255}));
}

TEST(ResizeLikePil, IdentityReturnsTheSamePixels) {
  cv::Mat noise(37, 23, CV_8UC3);
  cv::randu(noise, 0, 256);
  for (Interpolation i :
       {Interpolation::kNearest, Interpolation::kBox, Interpolation::kBilinear,
        Interpolation::kHamming, Interpolation::kBicubic, Interpolation::kLanczos}) {
    const cv::Mat out = resize_like_pil(noise, 23, 37, i);
    EXPECT_EQ(cv::norm(out, noise, cv::NORM_INF), 0.0) << to_string(i);
    EXPECT_NE(out.data, noise.data) << "must be a copy";
  }
}

TEST(ResizeLikePil, AcceptsRegionsOfLargerImages) {
  cv::Mat big(40, 50, CV_8UC3);
  cv::randu(big, 0, 256);
  const cv::Mat roi = big(cv::Rect(7, 5, 30, 20));
  const cv::Mat copy = roi.clone();
  EXPECT_EQ(cv::norm(resize_like_pil(roi, 11, 9, Interpolation::kBicubic),
                     resize_like_pil(copy, 11, 9, Interpolation::kBicubic), cv::NORM_INF),
            0.0);
}

TEST(ResizeLikePil, RejectsBadInput) {
  EXPECT_THROW(resize_like_pil(cv::Mat(), 2, 2, Interpolation::kBicubic), std::invalid_argument);
  EXPECT_THROW(resize_like_pil(tiny_image(), 0, 2, Interpolation::kBicubic), std::invalid_argument);
  EXPECT_THROW(resize_like_pil(cv::Mat(2, 2, CV_32FC1, 0.f), 1, 1, Interpolation::kBicubic),
               std::invalid_argument);
  EXPECT_THROW(resize_like_pil(cv::Mat(2, 2, CV_8UC4), 1, 1, Interpolation::kBicubic),
               std::invalid_argument);
}

TEST(Interpolation, NamesRoundTrip) {
  for (const char* name : {"nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"}) {
    EXPECT_EQ(to_string(interpolation_from_string(name)), name);
  }
  EXPECT_THROW(interpolation_from_string("cubic"), std::invalid_argument);
  EXPECT_THROW(interpolation_from_string("Bicubic"), std::invalid_argument);
}

// An RGB image whose red channel is the column and green channel the row (mod 256).
cv::Mat coordinate_image(int width, int height) {
  cv::Mat rgb(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(x), static_cast<uint8_t>(y), 0);
    }
  }
  return rgb;
}

// Undoes Normalize and ToTensor for channel c.
double unnormalise(const torch::Tensor& t, int64_t c, int64_t y, int64_t x,
                   const PreprocessConfig& config) {
  return (t[c][y][x].item<double>() * static_cast<float>(config.std[c]) +
          static_cast<float>(config.mean[c])) *
         255.0;
}

TEST(PreprocessImage, ShapeTypeAndLayout) {
  const PreprocessConfig config;  // 224, crop_pct 0.875, bicubic, ImageNet mean/std
  const torch::Tensor t = preprocess_image(coordinate_image(451, 300), config);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 224, 224}));
  EXPECT_EQ(t.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(t.is_contiguous());
}

TEST(PreprocessImage, CropOffsetRoundsHalfToEven) {
  // Squash with crop_pct 0.96: resize to floor(224 / 0.96) = 233 (a no-op on a 233x233 image),
  // then crop 224: offset round(9 / 2) = round(4.5) = 4 (Python rounds half to even).
  PreprocessConfig config;
  config.crop_mode = CropMode::kSquash;
  config.crop_pct = 0.96;
  torch::Tensor t = preprocess_image(coordinate_image(233, 233), config);
  EXPECT_NEAR(unnormalise(t, 0, 0, 0, config), 4.0, 1e-3);
  EXPECT_NEAR(unnormalise(t, 1, 0, 0, config), 4.0, 1e-3);
  CropBox box = preprocess_crop_box(233, 233, config);
  EXPECT_DOUBLE_EQ(box.x, 4.0);
  EXPECT_DOUBLE_EQ(box.width, 224.0);

  // crop_pct 0.95: floor(235.79) = 235, offset round(5.5) = 6.
  config.crop_pct = 0.95;
  t = preprocess_image(coordinate_image(235, 235), config);
  EXPECT_NEAR(unnormalise(t, 0, 0, 0, config), 6.0, 1e-3);
  EXPECT_NEAR(unnormalise(t, 0, 0, 223, config), 229.0, 1e-3);
  box = preprocess_crop_box(235, 235, config);
  EXPECT_DOUBLE_EQ(box.x, 6.0);
  EXPECT_DOUBLE_EQ(box.y, 6.0);
}

TEST(PreprocessImage, PadsWithZerosWhenTheImageIsSmaller) {
  // crop_pct 1.25 (timm allows > 1): resize to floor(224 / 1.25) = 179, then CenterCrop(224)
  // pads (224 - 179) // 2 = 22 columns on the left/top and 23 on the right/bottom.
  PreprocessConfig config;
  config.crop_mode = CropMode::kSquash;
  config.crop_pct = 1.25;
  const cv::Mat white(179, 179, CV_8UC3, cv::Scalar(255, 255, 255));
  const torch::Tensor t = preprocess_image(white, config);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 224, 224}));
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(unnormalise(t, c, 100, 21, config), 0.0, 1e-3);
    EXPECT_NEAR(unnormalise(t, c, 100, 22, config), 255.0, 1e-3);
    EXPECT_NEAR(unnormalise(t, c, 100, 200, config), 255.0, 1e-3);
    EXPECT_NEAR(unnormalise(t, c, 100, 201, config), 0.0, 1e-3);
    EXPECT_NEAR(unnormalise(t, c, 21, 100, config), 0.0, 1e-3);
    EXPECT_NEAR(unnormalise(t, c, 22, 100, config), 255.0, 1e-3);
  }
  const CropBox box = preprocess_crop_box(179, 179, config);
  EXPECT_DOUBLE_EQ(box.x, -22.0);
  EXPECT_DOUBLE_EQ(box.y, -22.0);
  EXPECT_DOUBLE_EQ(box.width, 224.0);
}

TEST(PreprocessImage, NormalisesLikeTorchvision) {
  // ToTensor divides by 255 and Normalize computes (x - mean) / std, all in float32.
  const PreprocessConfig config;
  const cv::Mat flat(300, 300, CV_8UC3, cv::Scalar(200, 100, 50));
  const torch::Tensor t = preprocess_image(flat, config);
  const float values[3] = {200, 100, 50};
  for (int64_t c = 0; c < 3; ++c) {
    const float expected = (values[c] / 255.0f - static_cast<float>(config.mean[c])) /
                           static_cast<float>(config.std[c]);
    EXPECT_EQ(t[c][17][31].item<float>(), expected);
  }
}

TEST(PreprocessImage, GreyUsesPilLuma) {
  // PIL convert("L"): (200*19595 + 100*38470 + 50*7471 + 0x8000) >> 16 = 124.
  PreprocessConfig config;
  config.channels = 1;
  config.mean = {0.5, 0.5, 0.5};
  config.std = {0.5, 0.5, 0.5};
  const cv::Mat flat(256, 256, CV_8UC3, cv::Scalar(200, 100, 50));
  const torch::Tensor t = preprocess_image(flat, config);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{1, 224, 224}));
  EXPECT_EQ(t[0][5][5].item<float>(), (124.0f / 255.0f - 0.5f) / 0.5f);
}

TEST(PreprocessCropBox, ShortSideResizeAndCentreCrop) {
  // torchvision Resize(256) on 451x300: 256 x int(256 * 451 / 300) = 384x256; crop 224 at
  // left round(80.0) = 80, top 16.
  const PreprocessConfig config;
  const CropBox box = preprocess_crop_box(451, 300, config);
  EXPECT_DOUBLE_EQ(box.x, 80.0 * 451.0 / 384.0);
  EXPECT_DOUBLE_EQ(box.y, 16.0 * 300.0 / 256.0);
  EXPECT_DOUBLE_EQ(box.width, 224.0 * 451.0 / 384.0);
  EXPECT_DOUBLE_EQ(box.height, 224.0 * 300.0 / 256.0);

  PreprocessConfig squash;
  squash.crop_mode = CropMode::kSquash;
  squash.crop_pct = 1.0;
  const CropBox all = preprocess_crop_box(451, 300, squash);
  EXPECT_DOUBLE_EQ(all.x, 0.0);
  EXPECT_DOUBLE_EQ(all.y, 0.0);
  EXPECT_DOUBLE_EQ(all.width, 451.0);
  EXPECT_DOUBLE_EQ(all.height, 300.0);
}

TEST(PreprocessCropBox, NonSquareTargetCoversTheScaledSize) {
  // 160x224 (h x w), crop_pct 0.875: the smallest aspect-kept size of a 600x400 image that
  // covers 182x256 (timm ResizeKeepRatio): ratio = min(400/182, 600/256) = 400/182, so
  // round(400/ratio) x round(600/ratio) = 182x273.
  PreprocessConfig config;
  config.height = 160;
  config.width = 224;
  const CropBox box = preprocess_crop_box(600, 400, config);
  const double sx = 600.0 / 273.0, sy = 400.0 / 182.0;
  EXPECT_NEAR(box.width, 224.0 * sx, 1e-9);
  EXPECT_NEAR(box.height, 160.0 * sy, 1e-9);
  EXPECT_NEAR(box.x, 24.0 * sx, 1e-9);  // round((273 - 224) / 2) = round(24.5) = 24
  EXPECT_NEAR(box.y, 11.0 * sy, 1e-9);  // round((182 - 160) / 2) = 11
}

TEST(PreprocessImage, ExtremeAspectRatioOnlyComputesTheCrop) {
  // torchvision would resize this 20000x1 strip to 5120000x256 (3.9 GB) before cropping; only
  // the 224x224 window is computed here.
  const cv::Mat strip(1, 20000, CV_8UC3, cv::Scalar(10, 20, 30));
  const PreprocessConfig config;
  const torch::Tensor t = preprocess_image(strip, config);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 224, 224}));
  EXPECT_NEAR(unnormalise(t, 2, 200, 100, config), 30.0, 1e-3);
}

TEST(PreprocessImage, RejectsBadInput) {
  const PreprocessConfig config;
  EXPECT_THROW(preprocess_image(cv::Mat(), config), std::invalid_argument);
  EXPECT_THROW(preprocess_image(cv::Mat(10, 10, CV_8UC1), config), std::invalid_argument);
  PreprocessConfig bad;
  bad.crop_pct = 0.0;
  EXPECT_THROW(preprocess_image(cv::Mat(10, 10, CV_8UC3), bad), std::invalid_argument);
  EXPECT_THROW(preprocess_crop_box(0, 10, config), std::invalid_argument);
}

TEST(PreprocessConfig, JsonRoundTrip) {
  PreprocessConfig c;
  c.height = 160;
  c.width = 320;
  c.crop_pct = 0.95;
  c.crop_mode = CropMode::kSquash;
  c.interpolation = Interpolation::kLanczos;
  c.mean = {0.5, 0.25, 0.125};
  c.std = {0.1, 0.2, 0.3};
  c.channels = 1;
  const PreprocessConfig r = PreprocessConfig::from_json(c.to_json());
  EXPECT_EQ(r.height, c.height);
  EXPECT_EQ(r.width, c.width);
  EXPECT_EQ(r.crop_pct, c.crop_pct);
  EXPECT_EQ(r.crop_mode, c.crop_mode);
  EXPECT_EQ(r.interpolation, c.interpolation);
  EXPECT_EQ(r.mean, c.mean);
  EXPECT_EQ(r.std, c.std);
  EXPECT_EQ(r.channels, c.channels);

  const nlohmann::json j = nlohmann::json::parse(c.to_json());
  EXPECT_EQ(j["crop_mode"], "squash");
  EXPECT_EQ(j["interpolation"], "lanczos");
}

TEST(PreprocessConfig, MissingKeysKeepDefaults) {
  const PreprocessConfig r = PreprocessConfig::from_json(R"({"interpolation": "bilinear"})");
  const PreprocessConfig d;
  EXPECT_EQ(r.interpolation, Interpolation::kBilinear);
  EXPECT_EQ(r.height, d.height);
  EXPECT_EQ(r.crop_pct, d.crop_pct);
  EXPECT_EQ(r.mean, d.mean);
  EXPECT_EQ(PreprocessConfig::from_json("{}").std, d.std);
  // One mean/std value serves every channel (grey models).
  const PreprocessConfig grey =
      PreprocessConfig::from_json(R"({"channels": 1, "mean": [0.5], "std": [0.25]})");
  EXPECT_EQ(grey.mean, (std::array<double, 3>{0.5, 0.5, 0.5}));
  EXPECT_EQ(grey.std[2], 0.25);
}

std::string config_error(const std::string& json) {
  try {
    PreprocessConfig::from_json(json);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(PreprocessConfig, RejectsBadValuesClearly) {
  const std::map<std::string, std::string> cases = {
      {R"({"interpolation": "cubic"})",
       "preprocess config: unknown interpolation \"cubic\" (expected nearest, box, bilinear, "
       "hamming, bicubic or lanczos)"},
      {R"({"crop_pct": 0})", "preprocess config: crop_pct must be in (0, 1], got 0"},
      {R"({"crop_pct": 1.5})", "preprocess config: crop_pct must be in (0, 1], got 1.5"},
      {R"({"crop_pct": "0.9"})", "preprocess config: crop_pct must be a number"},
      {R"({"height": 0})", "preprocess config: height must be in [1, 32768], got 0"},
      {R"({"width": -3})", "preprocess config: width must be in [1, 32768], got -3"},
      {R"({"width": 224.5})", "preprocess config: width must be an integer"},
      {R"({"std": [0.2, 0, 0.2]})", "preprocess config: std must be positive, got [0.2,0,0.2]"},
      {R"({"mean": [0.5, 0.5]})", "preprocess config: mean must be an array of 1 or 3 numbers"},
      {R"({"mean": [0.5, "a", 0.5]})", "preprocess config: mean must hold numbers"},
      {R"({"channels": 2})", "preprocess config: channels must be 1 or 3, got 2"},
      {R"({"crop_mode": "border"})",
       "preprocess config: unknown crop_mode \"border\" (expected center or squash)"},
      {R"({"crop_pct": 0.001})",
       "preprocess config: crop_pct 0.001 makes the resize target too large"},
      {R"([224])", "preprocess config: expected a JSON object"},
  };
  for (const auto& [json, message] : cases) EXPECT_EQ(config_error(json), message) << json;
  EXPECT_EQ(config_error("{").rfind("preprocess config: not valid JSON (", 0), 0u);
  // Found by fuzzing: a number beyond double is nlohmann's out_of_range, not a parse_error.
  EXPECT_EQ(config_error(R"({"height": 1e400})").rfind("preprocess config: not valid JSON (", 0),
            0u);
}

// ---------------------------------------------------------------------------------------------
// The oracle: tests/oracle/preprocess_reference.py runs PIL + torchvision on the same inputs.

struct OracleRun {
  std::string skip_reason;  // non-empty: the reference interpreter is unusable here
  std::string failure;      // non-empty: the oracle script itself failed
  fs::path dir;
  nlohmann::json manifest;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs the oracle once per test binary; the output lives in a temporary directory.
const OracleRun& oracle() {
  static const OracleRun run = [] {
    OracleRun r;
    const std::string python = ATTNKIT_ORACLE_PYTHON;
    if (::access(python.c_str(), X_OK) != 0) {
      r.skip_reason = python + " not found: the PIL/torchvision oracle needs Debian's python3";
      return r;
    }
    const std::string probe =
        shell_quote(python) + " -c 'import PIL, torch, torchvision, numpy' >/dev/null 2>&1";
    if (std::system(probe.c_str()) != 0) {
      r.skip_reason = python + " lacks PIL, torch, torchvision or numpy (python3-torchvision)";
      return r;
    }
    std::string pattern = (fs::temp_directory_path() / "attnkit_oracle_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      r.failure = "cannot create a temporary directory";
      return r;
    }
    r.dir = pattern;
    const fs::path script = fs::path(ATTNKIT_SOURCE_DIR) / "tests/oracle/preprocess_reference.py";
    const fs::path samples = fs::path(ATTNKIT_SOURCE_DIR) / "samples";
    const std::string command = shell_quote(python) + " " + shell_quote(script.string()) +
                                " --out " + shell_quote(r.dir.string()) + " --samples " +
                                shell_quote(samples.string()) + " > " +
                                shell_quote((r.dir / "log.txt").string()) + " 2>&1";
    if (std::system(command.c_str()) != 0) {
      std::ifstream log(r.dir / "log.txt");
      r.failure =
          "oracle failed: " + command + "\n" + std::string(std::istreambuf_iterator<char>(log), {});
      return r;
    }
    std::ifstream in(r.dir / "manifest.json");
    r.manifest = nlohmann::json::parse(in);
    return r;
  }();
  return run;
}

class OracleTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    std::error_code ignored;
    if (!oracle().dir.empty()) fs::remove_all(oracle().dir, ignored);
  }
  void SetUp() override {
    if (!oracle().skip_reason.empty()) ATTNKIT_SKIP_WITHOUT_ORACLE(oracle().skip_reason);
    ASSERT_TRUE(oracle().failure.empty()) << oracle().failure;
  }
};

template <typename T>
std::vector<T> read_raw(const fs::path& path, size_t count) {
  std::vector<T> values(count);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(count * sizeof(T)));
  EXPECT_EQ(static_cast<size_t>(in.gcount()), count * sizeof(T)) << path;
  return values;  // the oracle writes little-endian, as is this machine
}

TEST_F(OracleTest, PreprocessMatchesTorchvision) {
  struct Stats {
    double max_abs = 0, sum_abs = 0;
    size_t count = 0, cases = 0, exact_cases = 0;
  };
  std::map<std::string, Stats> by_interpolation;
  std::map<std::string, cv::Mat> loaded;
  for (const auto& entry : oracle().manifest) {
    if (entry["kind"] != "preprocess") continue;
    const std::string input = entry["input"].get<std::string>();
    const std::string output = entry["output"].get<std::string>();
    const nlohmann::json& jc = entry["config"];
    // Built field by field: the oracle also covers crop_pct > 1, which from_json refuses.
    PreprocessConfig config;
    config.height = jc["height"].get<int64_t>();
    config.width = jc["width"].get<int64_t>();
    config.crop_pct = jc["crop_pct"].get<double>();
    config.crop_mode = jc["crop_mode"] == "squash" ? CropMode::kSquash : CropMode::kCenter;
    config.interpolation = interpolation_from_string(jc["interpolation"].get<std::string>());
    config.mean = jc["mean"].get<std::array<double, 3>>();
    config.std = jc["std"].get<std::array<double, 3>>();
    config.channels = jc["channels"].get<int64_t>();

    if (!loaded.count(input)) loaded[input] = load_image_rgb(input);
    const torch::Tensor ours = preprocess_image(loaded[input], config);
    ASSERT_EQ(ours.sizes(), entry["shape"].get<std::vector<int64_t>>()) << output;
    const std::vector<float> ref =
        read_raw<float>(oracle().dir / output, static_cast<size_t>(ours.numel()));

    // Compare in 0..255 pixel units after undoing Normalize.
    const float* p = ours.data_ptr<float>();
    const int64_t plane = ours.size(1) * ours.size(2);
    double max_abs = 0, sum_abs = 0;
    for (int64_t i = 0; i < ours.numel(); ++i) {
      const double diff = std::abs(static_cast<double>(p[i]) - static_cast<double>(ref[i])) *
                          config.std[i / plane] * 255.0;
      max_abs = std::max(max_abs, diff);
      sum_abs += diff;
    }
    const double mean_abs = sum_abs / static_cast<double>(ours.numel());
    EXPECT_LE(mean_abs, 0.5) << output << ": mean abs error " << mean_abs << "/255";
    // PNG inputs decode identically in OpenCV and PIL, so the whole chain must be exact.
    const bool png = input.size() > 4 && input.compare(input.size() - 4, 4, ".png") == 0;
    if (png) {
      EXPECT_EQ(max_abs, 0.0) << output << ": max abs error " << max_abs << "/255";
    }

    Stats& s = by_interpolation[jc["interpolation"].get<std::string>()];
    s.max_abs = std::max(s.max_abs, max_abs);
    s.sum_abs += sum_abs;
    s.count += static_cast<size_t>(ours.numel());
    s.cases += 1;
    s.exact_cases += max_abs == 0.0 ? 1 : 0;
  }
  ASSERT_FALSE(by_interpolation.empty()) << "the oracle produced no preprocess cases";
  for (const auto& [name, s] : by_interpolation) {
    std::cout << "[ oracle   ] " << name << ": " << s.cases << " cases (" << s.exact_cases
              << " bit-exact), max abs " << s.max_abs << "/255, mean abs "
              << s.sum_abs / static_cast<double>(s.count) << "/255\n";
    RecordProperty("max_abs_" + name, std::to_string(s.max_abs));
  }
}

TEST_F(OracleTest, ResizeMatchesPilExactly) {
  int cases = 0;
  for (const auto& entry : oracle().manifest) {
    if (entry["kind"] != "resize") continue;
    cv::Mat image = load_image_rgb(entry["input"].get<std::string>());
    if (entry["mode"] == "L") {
      // The oracle resized PIL's convert("L") of the image: ITU-R 601-2 luma, Convert.c rgb2l.
      cv::Mat grey(image.rows, image.cols, CV_8UC1);
      for (int y = 0; y < image.rows; ++y) {
        for (int x = 0; x < image.cols; ++x) {
          const cv::Vec3b v = image.at<cv::Vec3b>(y, x);
          grey.at<uint8_t>(y, x) =
              static_cast<uint8_t>((v[0] * 19595 + v[1] * 38470 + v[2] * 7471 + 0x8000) >> 16);
        }
      }
      image = grey;
    }
    const cv::Mat ours =
        resize_like_pil(image, entry["width"].get<int>(), entry["height"].get<int>(),
                        interpolation_from_string(entry["interpolation"].get<std::string>()));
    const std::vector<uint8_t> ref = read_raw<uint8_t>(
        oracle().dir / entry["output"].get<std::string>(), ours.total() * ours.elemSize());
    const std::vector<uint8_t> got = pixels(ours);
    size_t differing = 0;
    int worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const int d = std::abs(static_cast<int>(got[i]) - static_cast<int>(ref[i]));
      differing += d != 0;
      worst = std::max(worst, d);
    }
    EXPECT_EQ(differing, 0u) << entry["output"] << ": worst difference " << worst;
    ++cases;
  }
  EXPECT_GT(cases, 0) << "the oracle produced no resize cases";
}

}  // namespace
}  // namespace attnkit::vision
