// tests/vision/train/feature_cache_test.cpp: the on-disk feature cache: what it reads back is what
// the encoder computed (rounded to fp16 or bf16), unreadable images are zeros and listed, a pass
// cut short resumes with only the missing shards, and another encoder gets another folder.
#include "vision/train/feature_cache.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "tests/vision/test_support.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"

namespace attnkit::vision {
namespace {

namespace fs = std::filesystem;

// 10 images of different sizes and colours, the fourth one broken.
std::vector<std::string> make_images(const attnkit::testing::TempDir& dir) {
  std::vector<std::string> paths;
  for (int i = 0; i < 10; ++i) {
    const auto path = dir.file("img" + std::to_string(i) + ".png");
    if (i == 3) {
      std::ofstream(path) << "not a png";
    } else {
      cv::Mat rgb(20 + i, 30 + 2 * i, CV_8UC3, cv::Scalar(20 * i, 255 - 20 * i, 7 * i));
      save_image_rgb(path, rgb);
    }
    paths.push_back(path);
  }
  return paths;
}

// A stand-in encoder: per image, 4 tokens of 3 values from its channel means; counts its images.
FeatureEncoder counting_encoder(int64_t* encoded, uint64_t key) {
  FeatureEncoder encoder;
  encoder.tokens = 4;
  encoder.dim = 3;
  encoder.grid_height = 2;
  encoder.grid_width = 2;
  encoder.key = key;
  encoder.encode = [encoded](const torch::Tensor& images) {
    *encoded += images.size(0);
    const auto means = images.mean({2, 3});                    // (B, 3)
    const auto scale = torch::arange(1, 5).to(torch::kFloat);  // 4 tokens
    return means.unsqueeze(1) * scale.view({1, 4, 1}) + 0.123456789;
  };
  return encoder;
}

PreprocessConfig small_preprocess() {
  PreprocessConfig p;
  p.height = p.width = 8;
  p.crop_pct = 1.0;
  return p;
}

TEST(FeatureCache, ReadsBackTheEncodersFeaturesRoundedToItsDtype) {
  attnkit::testing::TempDir dir;
  const auto paths = make_images(dir);
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    int64_t encoded = 0;
    const auto encoder = counting_encoder(&encoded, 42);
    FeatureCacheOptions options;
    options.directory = dir.file(dtype == torch::kHalf ? "fp16" : "bf16");
    options.dtype = dtype;
    options.shard_images = 4;
    options.batch_size = 3;
    const auto cache = FeatureCache::open(encoder, paths, small_preprocess(), options);
    EXPECT_EQ(cache->size(), 10);
    EXPECT_EQ(cache->tokens(), 4);
    EXPECT_EQ(cache->dim(), 3);
    EXPECT_EQ(cache->grid_height(), 2);
    EXPECT_EQ(cache->computed_shards(), 3);
    EXPECT_EQ(encoded, 9);  // the broken image never reaches the encoder
    ASSERT_EQ(cache->unreadable().size(), 1u);
    EXPECT_EQ(cache->unreadable()[0].first, 3);
    EXPECT_EQ(cache->unreadable()[0].second.path, paths[3]);
    EXPECT_NE(cache->unreadable()[0].second.error.find("not a decodable image"), std::string::npos);
    EXPECT_EQ(cache->image_sizes()[5], std::make_pair(40, 25));
    EXPECT_EQ(cache->image_sizes()[3], std::make_pair(0, 0));

    const std::vector<int64_t> rows = {9, 0, 3, 5, 5};
    const auto got = cache->gather(rows);
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{5, 4, 3}));
    EXPECT_EQ(got.scalar_type(), torch::kFloat);
    for (size_t i = 0; i < rows.size(); ++i) {
      SCOPED_TRACE(rows[i]);
      if (rows[i] == 3) {
        EXPECT_EQ(got[i].abs().sum().item<float>(), 0.0F);
        continue;
      }
      const auto image = preprocess_image(load_image_rgb(paths[rows[i]]), small_preprocess());
      const auto expected = encoder.encode(image.unsqueeze(0))[0].to(dtype).to(torch::kFloat);
      EXPECT_TRUE(torch::equal(got[i], expected));
    }
  }
}

TEST(FeatureCache, AnInterruptedPassComputesOnlyTheMissingShards) {
  attnkit::testing::TempDir dir;
  const auto paths = make_images(dir);
  FeatureCacheOptions options;
  options.directory = dir.file("cache");
  options.shard_images = 4;
  int64_t encoded = 0;
  const auto first =
      FeatureCache::open(counting_encoder(&encoded, 7), paths, small_preprocess(), options);
  const auto before = first->gather({0, 5, 9});
  // A pass killed while writing the second shard: its record (written last) is missing, and
  // what was written of its features is a temporary that never replaced the shard.
  const fs::path folder = first->folder();
  fs::remove(folder / "shard-00001.json");
  std::ofstream(folder / "shard-00001.bin", std::ios::trunc) << "torn";
  encoded = 0;
  const auto second =
      FeatureCache::open(counting_encoder(&encoded, 7), paths, small_preprocess(), options);
  EXPECT_EQ(second->folder(), first->folder());
  EXPECT_EQ(second->reused_shards(), 2);
  EXPECT_EQ(second->computed_shards(), 1);
  EXPECT_EQ(encoded, 4);  // images 4..7
  EXPECT_TRUE(torch::equal(second->gather({0, 5, 9}), before));

  // A shard whose features file is shorter than its record says is computed again.
  fs::resize_file(folder / "shard-00002.bin", 10);
  encoded = 0;
  const auto third =
      FeatureCache::open(counting_encoder(&encoded, 7), paths, small_preprocess(), options);
  EXPECT_EQ(third->computed_shards(), 1);
  EXPECT_EQ(encoded, 2);

  // Another encoder, preprocessing or image list: another folder beside it.
  encoded = 0;
  const auto other =
      FeatureCache::open(counting_encoder(&encoded, 8), paths, small_preprocess(), options);
  EXPECT_NE(other->folder(), first->folder());
  EXPECT_EQ(other->computed_shards(), 3);
  auto preprocess = small_preprocess();
  preprocess.height = 9;
  const auto resized =
      FeatureCache::open(counting_encoder(&encoded, 7), paths, preprocess, options);
  EXPECT_NE(resized->folder(), first->folder());
  const std::vector<std::string> fewer(paths.begin(), paths.begin() + 6);
  const auto subset =
      FeatureCache::open(counting_encoder(&encoded, 7), fewer, small_preprocess(), options);
  EXPECT_NE(subset->folder(), first->folder());
}

TEST(FeatureCache, ABatchWithNoReadableImageStillHasItsRows) {
  // The second shard's first batch (images 4 and 5) holds no readable image: its rows are
  // zeros, and the images after it keep their own rows.
  attnkit::testing::TempDir dir;
  auto paths = make_images(dir);
  for (int i : {4, 5}) std::ofstream(paths[i], std::ios::trunc) << "broken";
  FeatureCacheOptions options;
  options.directory = dir.file("cache");
  options.shard_images = 4;
  options.batch_size = 2;
  int64_t encoded = 0;
  const auto encoder = counting_encoder(&encoded, 9);
  const auto cache = FeatureCache::open(encoder, paths, small_preprocess(), options);
  EXPECT_EQ(cache->unreadable().size(), 3u);
  const auto got = cache->gather({4, 5, 6, 7});
  EXPECT_EQ(got.narrow(0, 0, 2).abs().sum().item<float>(), 0.0F);
  for (int i : {6, 7}) {
    const auto image = preprocess_image(load_image_rgb(paths[i]), small_preprocess());
    const auto expected = encoder.encode(image.unsqueeze(0))[0].to(torch::kHalf).to(torch::kFloat);
    EXPECT_TRUE(torch::equal(got[i - 4], expected)) << i;
  }
}

TEST(FeatureCache, TheKeyFollowsTheWeightsAndTheDescription) {
  const auto w = torch::arange(6).to(torch::kFloat).view({2, 3});
  const auto base = feature_cache_key({{"w", w}}, "config");
  EXPECT_EQ(feature_cache_key({{"w", w.clone()}}, "config"), base);
  EXPECT_NE(feature_cache_key({{"w", w + 1e-6}}, "config"), base);
  EXPECT_NE(feature_cache_key({{"w", w.view({3, 2})}}, "config"), base);
  EXPECT_NE(feature_cache_key({{"v", w}}, "config"), base);
  EXPECT_NE(feature_cache_key({{"w", w}}, "config2"), base);
}

}  // namespace
}  // namespace attnkit::vision
