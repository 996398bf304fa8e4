// tests/apps/data_test.cpp: `attn data scenes` end to end: deterministic files that the Karpathy
// loader reads back, and usage errors.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/apps/cli_support.h"
#include "vision/data/fashion_mnist.h"
#include "vision/data/karpathy.h"
#include "vision/image/image_io.h"

namespace attnkit::apps {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(DataScenes, WritesTheSameScenesForTheSameSeed) {
  if (!std::filesystem::exists(std::string(vision::kFashionMnistDir) +
                               "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  attnkit::testing::TempDir dir;
  for (const char* name : {"a", "b"}) {
    auto r = run_attn("data scenes --count 20 --seed 4 --out " + dir.file(name));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_EQ(slurp(dir.file("a/scenes.json")), slurp(dir.file("b/scenes.json")));
  EXPECT_EQ(slurp(dir.file("a/images/scene_000019.png")),
            slurp(dir.file("b/images/scene_000019.png")));
  const auto records = vision::load_karpathy_json(dir.file("a/scenes.json"), dir.file("a"));
  ASSERT_EQ(records.size(), 20u);
  EXPECT_EQ(records[17].split, "train");
  EXPECT_EQ(records[18].split, "val");  // the last 10% validate
  for (const auto& r : records) {
    const auto image = vision::load_image_rgb(r.image_path);
    EXPECT_EQ(image.cols, 64);
    EXPECT_GE(r.objects.size(), 2u);
    EXPECT_GE(r.captions.size(), 2u);
  }
  auto test = run_attn("data scenes --split test --count 3 --out " + dir.file("t"));
  ASSERT_EQ(test.exit_code, 0) << test.err;
  for (const auto& r : vision::load_karpathy_json(dir.file("t/scenes.json"), dir.file("t"))) {
    EXPECT_EQ(r.split, "test");
  }
}

TEST(DataScenes, RejectsBadArguments) {
  attnkit::testing::TempDir dir;
  EXPECT_EQ(run_attn("data").exit_code, 2);
  EXPECT_EQ(run_attn("data planets --out " + dir.file("x")).exit_code, 2);
  EXPECT_EQ(run_attn("data scenes").exit_code, 2);  // no --out
  EXPECT_EQ(run_attn("data scenes --count 0 --out " + dir.file("x")).exit_code, 2);
  EXPECT_EQ(run_attn("data scenes --min-items 1 --out " + dir.file("x")).exit_code, 2);
  EXPECT_EQ(run_attn("data scenes --split val --out " + dir.file("x")).exit_code, 2);
  auto missing = run_attn("data scenes --fashion-dir /nonexistent --out " + dir.file("x"));
  EXPECT_EQ(missing.exit_code, 4);
  EXPECT_NE(missing.err.find("/nonexistent"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace attnkit::apps
