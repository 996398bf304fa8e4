// tests/apps/weights_test.cpp: the shipped default models re-measured: `attn eval` on the 10,000
// Fashion-MNIST test images and on 1,000 generated test scenes must give the model cards'
// figures within 0.2 points.
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/apps/cli_support.h"
#include "vision/data/fashion_mnist.h"

namespace attnkit::apps {
namespace {

const std::string kWeights = std::string(ATTNKIT_SOURCE_DIR) + "/weights";

/// The bold number in the card's "| Test top-1 ... | **NN.NN%** |" row (the % is optional).
double card_figure(const std::string& card_path, const std::string& row) {
  std::ifstream in(card_path);
  EXPECT_TRUE(in.good()) << card_path;
  const std::string text(std::istreambuf_iterator<char>(in), {});
  std::smatch m;
  const std::regex pattern("\\| " + row + "[^|]*\\| \\*\\*([0-9.]+)%?\\*\\*");
  if (!std::regex_search(text, m, pattern)) {
    ADD_FAILURE() << card_path << " has no row '" << row << "' with a bold figure";
    return -1;
  }
  return std::stod(m[1]);
}

TEST(ShippedWeights, FashionClassifierMatchesItsModelCard) {
  ASSERT_TRUE(std::filesystem::exists(kWeights + "/fashion-vit.safetensors"));
  if (!std::filesystem::exists(std::string(vision::kFashionMnistDir) +
                               "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  const double top1 = card_figure(kWeights + "/fashion-vit.md", "Test top-1");
  const double top5 = card_figure(kWeights + "/fashion-vit.md", "Test top-5");
  // No --model: the default model is the shipped one.
  auto r = run_attn("eval classifier --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["count"], 10000);
  EXPECT_NEAR(100 * doc["top1"].get<double>(), top1, 0.2);
  EXPECT_NEAR(100 * doc["top5"].get<double>(), top5, 0.2);

  const double top1_flip = card_figure(kWeights + "/fashion-vit.md", "Test top-1 with flip TTA");
  auto flip = run_attn("eval classifier --json --tta flip");
  ASSERT_EQ(flip.exit_code, 0) << flip.err;
  const auto flip_doc = nlohmann::json::parse(flip.out);
  EXPECT_EQ(flip_doc["tta"], "flip");
  EXPECT_NEAR(100 * flip_doc["top1"].get<double>(), top1_flip, 0.2);
}

// The scenes captioner on the card's fixed test scenes (generated here, deterministically, from
// Fashion-MNIST's test split): BLEU-4, CIDEr-D (x100, as papers print it) and pointing within 0.2
// points of the card.
TEST(ShippedWeights, ScenesCaptionerMatchesItsModelCard) {
  ASSERT_TRUE(std::filesystem::exists(kWeights + "/scenes-captioner.safetensors"));
  if (!std::filesystem::exists(std::string(vision::kFashionMnistDir) +
                               "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  const std::string card = kWeights + "/scenes-captioner.md";
  const double bleu4 = card_figure(card, "Test BLEU-4");
  const double cider = card_figure(card, "Test CIDEr-D");
  const double pointing = card_figure(card, "Test pointing game");
  attnkit::testing::TempDir tmp;
  auto r = run_attn("data scenes --split test --count 1000 --seed 1 --out " + tmp.file("scenes"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // No --model: the default captioner is the shipped one.
  r = run_attn("eval captioner --beam 3 --json --data " + tmp.file("scenes/scenes.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["count"], 1000);
  EXPECT_NEAR(100 * doc["bleu"][3].get<double>(), bleu4, 0.2);
  EXPECT_NEAR(100 * doc["cider_d"].get<double>(), cider, 0.2);
  EXPECT_NEAR(100 * doc["pointing"]["accuracy"].get<double>(), pointing, 0.2);
}

}  // namespace
}  // namespace attnkit::apps
