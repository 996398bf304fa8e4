// tests/apps/captioner_cli_test.cpp: the captioning path end to end with the real binary:
// `attn data scenes` -> `attn train captioner` (a smoke run that must lower the loss and resume)
// -> `attn eval captioner` -> `attn caption`; a smoke run of the shipped recipe.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/apps/cli_support.h"
#include "vision/data/fashion_mnist.h"

namespace attnkit::apps {
namespace {

using nlohmann::json;

TEST(CaptionerCli, ScenesTrainEvalCaption) {
  if (!std::filesystem::exists(std::string(vision::kFashionMnistDir) +
                               "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  attnkit::testing::TempDir dir;
  ASSERT_EQ(
      run_attn("data scenes --count 150 --val-count 30 --out " + dir.file("scenes")).exit_code, 0);
  const std::string train_args = "train captioner --data " + dir.file("scenes/scenes.json") +
                                 " --image-size 32 --batch-size 24 --lr 3e-3 --out " +
                                 dir.file("run");
  auto first = run_attn(train_args + " --epochs 2");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto log = read_jsonl(dir.file("run/log.jsonl"));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_LT(log[1]["val_loss"].get<double>(), log[0]["val_loss"].get<double>());
  auto resumed = run_attn(train_args + " --epochs 3 --resume " + dir.file("run/last.safetensors"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed at epoch 3"), std::string::npos) << resumed.err;
  log = read_jsonl(dir.file("run/log.jsonl"));
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[2]["step"].get<int64_t>(), 3 * log[0]["step"].get<int64_t>());

  auto eval =
      run_attn("eval captioner --json --split val --beam 2 --model " +
               dir.file("run/best.safetensors") + " --data " + dir.file("scenes/scenes.json"));
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const auto doc = json::parse(eval.out);
  EXPECT_EQ(doc["count"], 30);
  EXPECT_EQ(doc["bleu"].size(), 4u);
  EXPECT_GT(doc["pointing"]["total"].get<int64_t>(), 0);
  EXPECT_GE(doc["cider_d"].get<double>(), 0.0);

  auto caption = run_attn("caption --json --model " + dir.file("run/best.safetensors") + " " +
                          dir.file("scenes/images/scene_000149.png"));
  ASSERT_EQ(caption.exit_code, 0) << caption.err;
  const auto c = json::parse(caption.out);
  ASSERT_EQ(c["results"].size(), 1u);
  EXPECT_FALSE(c["results"][0]["words"].empty());

  EXPECT_EQ(run_attn("train captioner --out " + dir.file("x")).exit_code, 2);  // no --data
  auto missing = run_attn("eval captioner --model " + dir.file("run/best.safetensors") +
                          " --data " + dir.file("none.json"));
  EXPECT_EQ(missing.exit_code, 4);
  EXPECT_NE(missing.err.find("none.json"), std::string::npos) << missing.err;
}

// A smoke run of the shipped captioner recipe (the shipped classifier's stem as a frozen encoder,
// attention supervision, one caption per image): an epoch is one step per batch of images, not of
// captions; the training loss falls; the checkpoint captions. Supervision refuses data without
// boxes.
TEST(CaptionerCli, ShippedRecipeSmokeRunAndAttentionSupervisionErrors) {
  if (!std::filesystem::exists(std::string(vision::kFashionMnistDir) +
                               "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  attnkit::testing::TempDir dir;
  ASSERT_EQ(
      run_attn("data scenes --count 120 --val-count 20 --out " + dir.file("scenes")).exit_code, 0);
  const std::string data = dir.file("scenes/scenes.json");
  const std::string common = " --image-size 32 --batch-size 20 --epochs 1 --out ";
  const std::string encoder = std::string(ATTNKIT_SOURCE_DIR) + "/weights/fashion-vit.safetensors";
  auto run = run_attn("train captioner --data " + data +
                      " --image-size 32 --batch-size 20 --epochs 4 --lr 2e-3 --encoder " + encoder +
                      " --encoder-depth 0 --doubly-stochastic 0.001" +
                      " --captions-per-image 1 --attention-supervision 1 --out " + dir.file("run"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto log = read_jsonl(dir.file("run/log.jsonl"));
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0]["step"].get<int64_t>(), 100 / 20);  // 100 training images, one caption each
  EXPECT_LT(log[3]["train_loss"].get<double>(), log[0]["train_loss"].get<double>());
  auto caption = run_attn("caption --json --model " + dir.file("run/best.safetensors") + " " +
                          dir.file("scenes/images/scene_000119.png"));
  ASSERT_EQ(caption.exit_code, 0) << caption.err;
  EXPECT_FALSE(json::parse(caption.out)["results"][0]["words"].empty());

  // The same data without objects[]: supervision has nothing to supervise with.
  json doc;
  std::ifstream(data) >> doc;
  for (auto& image : doc["images"]) image.erase("objects");
  const std::string bare = dir.file("scenes/bare.json");
  std::ofstream(bare) << doc.dump();
  auto refused = run_attn("train captioner --data " + bare + common + dir.file("bare") +
                          " --attention-supervision 1");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("bare.json"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("object boxes"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("bare/last.safetensors")));
  EXPECT_EQ(run_attn("train captioner --data " + data + common + dir.file("neg") +
                     " --captions-per-image -1")
                .exit_code,
            2);
  EXPECT_EQ(run_attn("train captioner --data " + data + common + dir.file("neg") +
                     " --attention-supervision -0.5")
                .exit_code,
            2);
}

}  // namespace
}  // namespace attnkit::apps
