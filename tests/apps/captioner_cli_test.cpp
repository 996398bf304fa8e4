// tests/apps/captioner_cli_test.cpp: the captioning path end to end with the real binary:
// `attn data scenes` -> `attn train captioner` (a smoke run that must lower the loss and resume)
// -> `attn eval captioner` -> `attn caption`.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/apps/cli_support.h"
#include "vision/data/fashion_mnist.h"

namespace attnkit::apps {
namespace {

using nlohmann::json;

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

TEST(CaptionerCli, ScenesTrainEvalCaption) {
  if (!std::filesystem::exists(std::string(vision::kFashionMnistDir) +
                               "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  attnkit::testing::TempDir dir;
  ASSERT_EQ(run_attn("data scenes --count 150 --val-count 30 --out " + dir.file("scenes"))
                .exit_code,
            0);
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

  auto eval = run_attn("eval captioner --json --split val --beam 2 --model " +
                       dir.file("run/best.safetensors") + " --data " +
                       dir.file("scenes/scenes.json"));
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

}  // namespace
}  // namespace attnkit::apps
