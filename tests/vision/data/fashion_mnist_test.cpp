// tests/vision/data/fashion_mnist_test.cpp: the idx reader on files we write (gzip and raw, every
// malformed case) and on Debian's real Fashion-MNIST files.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include "tests/vision/test_support.h"
#include "vision/data/fashion_mnist.h"
#include "vision/data/image_folder.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"

namespace attnkit::vision {
namespace {

using attnkit::testing::TempDir;

std::string idx_bytes(const std::vector<int32_t>& dims, const std::vector<uint8_t>& data,
                      uint8_t type = 0x08) {
  std::string out = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (int32_t d : dims) {
    for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<char>((d >> shift) & 0xff));
  }
  out.append(data.begin(), data.end());
  return out;
}

void write_file(const std::string& path, const std::string& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

TEST(FashionMnist, ReadsIdxGzipAndRaw) {
  TempDir dir;
  std::vector<uint8_t> data(2 * 3 * 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  for (bool gzip : {true, false}) {
    const auto path = dir.file(gzip ? "a.gz" : "a");
    write_file(path, idx_bytes({2, 3, 4}, data), gzip);
    auto t = read_idx(path);
    ASSERT_EQ(t.sizes(), (std::vector<int64_t>{2, 3, 4}));
    EXPECT_EQ(t[1][2][3].item<int>(), data[23]);
    EXPECT_EQ(t[0][1][0].item<int>(), data[4]);
  }
}

TEST(FashionMnist, RejectsMalformedIdxNamingTheFile) {
  TempDir dir;
  const std::vector<uint8_t> six(6, 1);
  struct Case {
    std::string name, bytes, message;
  };
  const std::vector<Case> cases = {
      {"truncated", idx_bytes({2, 4}, six), "truncated"},
      {"magic", std::string("\x01\x00\x08\x01\x00\x00\x00\x01\x05", 9), "bad magic"},
      {"type", idx_bytes({6}, six, 0x0d), "not supported"},
      {"trailing", idx_bytes({5}, six), "trailing"},
      {"header", std::string("\x00\x00", 2), "truncated"},
      {"dims", idx_bytes({0}, {}), "implausible"},
  };
  for (const auto& c : cases) {
    const auto path = dir.file(c.name);
    write_file(path, c.bytes, false);
    try {
      read_idx(path);
      ADD_FAILURE() << c.name << ": no error";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(read_idx(dir.file("missing")), DataError);
}

TEST(FashionMnist, ChecksImagesAgainstLabels) {
  TempDir dir;
  write_file(dir.file("t10k-images-idx3-ubyte.gz"), idx_bytes({3, 2, 2}, std::vector<uint8_t>(12)),
             true);
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({2}, {1, 2}), false);
  EXPECT_THROW(load_fashion_mnist(dir.path().string(), "test"), DataError);
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({3}, {1, 2, 12}), false);
  EXPECT_THROW(load_fashion_mnist(dir.path().string(), "test"), DataError);  // label 12
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({3}, {1, 2, 9}), false);
  auto data = load_fashion_mnist(dir.path().string(), "test");
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{3, 1, 2, 2}));
  EXPECT_EQ(data.labels[2].item<int64_t>(), 9);
  EXPECT_THROW(load_fashion_mnist(dir.path().string(), "train"), DataError);  // no train files
  EXPECT_THROW(load_fashion_mnist(dir.path().string(), "validation"), DataError);
}

TEST(FashionMnist, ReadsDebiansFiles) {
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  auto test = load_fashion_mnist(kFashionMnistDir, "test");
  EXPECT_EQ(test.images.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  // Every class has exactly 1,000 test images (the dataset's README).
  EXPECT_TRUE(torch::bincount(test.labels).eq(1000).all().item<bool>());
  EXPECT_EQ(test.labels[0].item<int64_t>(), 9);  // the first test image is an ankle boot
  EXPECT_EQ(test.classes[9], "Ankle boot");
}

TEST(ImageFolder, LoadsClassesSortedAndSkipsBrokenFiles) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "zebra");
  std::filesystem::create_directories(dir.path() / "apple" / "nested");
  std::filesystem::create_directories(dir.path() / "empty");
  cv::Mat red(10, 20, CV_8UC3, cv::Scalar(255, 0, 0));
  save_image_rgb(dir.file("zebra/a.png"), red);
  save_image_rgb(dir.file("apple/nested/b.png"), red);
  save_image_rgb(dir.file("apple/c.jpg"), red);
  std::ofstream(dir.file("apple/broken.png")) << "not a png";
  PreprocessConfig config;
  config.height = config.width = 8;
  config.crop_pct = 1.0;
  auto data = load_image_folder(dir.path().string(), config);
  EXPECT_EQ(data.classes, (std::vector<std::string>{"apple", "zebra"}));
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{3, 3, 8, 8}));
  EXPECT_EQ(data.labels.sum().item<int64_t>(), 1);
  ASSERT_EQ(data.skipped.size(), 1u);
  EXPECT_EQ(data.skipped[0].path, dir.file("apple/broken.png"));
  EXPECT_NE(data.skipped[0].error.find("broken.png: not a decodable image"), std::string::npos);
  EXPECT_GE(data.images[0][0][4][4].item<int>(), 250);  // red channel survives (JPEG: near)
  EXPECT_THROW(load_image_folder(dir.file("zebra/a.png"), config), DataError);
  EXPECT_THROW(load_image_folder(dir.file("empty"), config), DataError);
}

TEST(LabeledImages, ValidationSplitIsDisjointAndSeeded) {
  LabeledImages data;
  data.images = torch::arange(100, torch::kLong).to(torch::kUInt8).view({100, 1, 1, 1});
  data.labels = torch::arange(100) % 3;
  data.classes = {"a", "b", "c"};
  auto [train, val] = split_validation(data, 20, 7);
  auto [train2, val2] = split_validation(data, 20, 7);
  auto [train3, val3] = split_validation(data, 20, 8);
  EXPECT_EQ(train.size(), 80);
  EXPECT_EQ(val.size(), 20);
  EXPECT_TRUE(torch::equal(val.images, val2.images));
  EXPECT_FALSE(torch::equal(val.images, val3.images));
  auto all = torch::cat({train.images.flatten(), val.images.flatten()}).to(torch::kLong);
  EXPECT_TRUE(torch::equal(std::get<0>(all.sort()), torch::arange(100)));
  EXPECT_TRUE(torch::equal(train.labels, train.images.flatten().to(torch::kLong) % 3));
}

}  // namespace
}  // namespace attnkit::vision
