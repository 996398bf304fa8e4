// tests/apps/train_eval_test.cpp: `attn train classifier` and `attn eval classifier` end to end
// on Debian's Fashion-MNIST: a smoke run of the shipped recipe that must learn, resume, and give
// a model that eval and classify accept; and the errors.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/apps/cli_support.h"
#include "tests/vision/test_support.h"
#include "vision/data/fashion_mnist.h"
#include "vision/image/image_io.h"

namespace attnkit::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kFashionSamples = std::string(ATTNKIT_SOURCE_DIR) + "/samples/fashion";

/// One smoke training of the shipped recipe for the whole suite: 2 epochs of 30 steps.
class TrainEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(std::string(vision::kFashionMnistDir) + "/train-images-idx3-ubyte.gz")) return;
    dir_ = new attnkit::testing::TempDir();
    first_ = run_attn(
        "train classifier --limit 1700 --val-count 500 --epochs 2 --batch-size 40 "
        "--warmup-epochs 0.5 --lr 2e-3 --out " +
        dir_->file("run"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  static std::string run_file(const std::string& name) { return dir_->file("run/" + name); }

  static attnkit::testing::TempDir* dir_;
  static RunResult first_;
};
attnkit::testing::TempDir* TrainEval::dir_ = nullptr;
RunResult TrainEval::first_;

TEST_F(TrainEval, SmokeTrainingLearnsAndResumes) {
  ASSERT_EQ(first_.exit_code, 0) << first_.err;
  EXPECT_NE(first_.err.find("1200 training and 500 validation images"), std::string::npos)
      << first_.err;
  auto log = read_jsonl(run_file("log.jsonl"));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1]["step"], 60);
  EXPECT_LT(log[1]["train_loss"].get<double>(), log[0]["train_loss"].get<double>());
  EXPECT_LT(log[1]["val_loss"].get<double>(), 2.0);  // chance is ln 10 = 2.30
  EXPECT_GT(log[1]["val_top1"].get<double>(), 0.4);  // chance is 0.1

  // Resuming with more epochs continues from step 60 with the saved optimizer.
  auto resumed = run_attn(
      "train classifier --limit 1700 --val-count 500 --epochs 3 "
      "--batch-size 40 --warmup-epochs 0.5 --lr 2e-3 --out " +
      dir_->file("run") + " --resume " + run_file("last.safetensors"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed at epoch 3, step 60"), std::string::npos) << resumed.err;
  log = read_jsonl(run_file("log.jsonl"));
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[2]["epoch"], 3);
  EXPECT_EQ(log[2]["step"], 90);
}

// `attn train` says its precision on its first line and in log.jsonl; --precision and --no-bf16
// override it; bf16 where it is not native warns.
TEST(TrainPrecisionCli, FirstLineLogFieldAndOverrides) {
  if (!fs::exists(std::string(vision::kFashionMnistDir) + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  attnkit::testing::TempDir tmp;
  const std::string small = "train classifier --limit 120 --val-count 40 --epochs 1 -b 40 ";
  PretendCpu cpu(kAvx2OnlyCpu);
  const auto r = run_attn(small + "--out " + tmp.file("auto"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.rfind("attn train: precision: fp32 (auto: this CPU has no native bf16: AVX2 "
                        "only)\n",
                        0),
            0u)
      << r.err;
  const auto log = read_jsonl(tmp.file("auto/log.jsonl"));
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["precision"], "fp32");
  EXPECT_TRUE(log[0].contains("val_top1"));  // the existing fields stay

  const auto no_bf16 = run_attn(small + "--no-bf16 --max-steps 1 --out " + tmp.file("no"));
  ASSERT_EQ(no_bf16.exit_code, 0) << no_bf16.err;
  EXPECT_EQ(no_bf16.err.rfind("attn train: precision: fp32 (--no-bf16)\n", 0), 0u) << no_bf16.err;
  const auto forced = run_attn(small + "--precision bf16 --max-steps 1 --out " + tmp.file("bf"));
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(forced.err.rfind("attn train: precision: bf16 (requested)\n", 0), 0u) << forced.err;
  EXPECT_NE(forced.err.find("warning: bf16 requested, but this CPU has no native bf16"),
            std::string::npos)
      << forced.err;

  const auto bad = run_attn(small + "--precision fp16 --out " + tmp.file("x"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--precision must be auto, fp32 or bf16"), std::string::npos) << bad.err;
  EXPECT_EQ(run_attn(small + "--precision bf16 --no-bf16 --out " + tmp.file("x")).exit_code, 2);
  const auto captioner = run_attn("train captioner --help");
  EXPECT_NE(captioner.out.find("--precision"), std::string::npos);
}

TEST_F(TrainEval, EvalReportsAccuracyConfusionAndPlot) {
  ASSERT_EQ(first_.exit_code, 0) << first_.err;
  const auto plot = dir_->file("confusion.png");
  auto r = run_attn("eval classifier --model " + run_file("best.safetensors") + " --json --plot " +
                    plot);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = json::parse(r.out);
  EXPECT_EQ(doc["count"], 10000);
  int64_t total = 0, diagonal = 0;
  for (size_t i = 0; i < doc["confusion"].size(); ++i) {
    for (size_t j = 0; j < doc["confusion"][i].size(); ++j) {
      total += doc["confusion"][i][j].get<int64_t>();
      if (i == j) diagonal += doc["confusion"][i][j].get<int64_t>();
    }
  }
  EXPECT_EQ(total, 10000);
  EXPECT_DOUBLE_EQ(doc["top1"].get<double>(), diagonal / 10000.0);
  EXPECT_GE(doc["top5"].get<double>(), doc["top1"].get<double>());
  EXPECT_EQ(doc["classes"][9], "Ankle boot");
  const auto image = vision::load_image_rgb(plot);
  EXPECT_GT(image.cols, 500);

  // The table names each class with its recall.
  auto table = run_attn("eval classifier --model " + run_file("best.safetensors"));
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("top-1: "), std::string::npos);
  EXPECT_NE(table.out.find("Ankle boot"), std::string::npos);
}

TEST_F(TrainEval, EvalOnAnImageFolderMapsFolderNamesToLabels) {
  attnkit::testing::TempDir folder;
  fs::create_directories(folder.path() / "Trouser");
  fs::create_directories(folder.path() / "Bag");
  fs::copy_file(kFashionSamples + "/test0002-trouser.png", folder.file("Trouser/a.png"));
  fs::copy_file(kFashionSamples + "/test0018-bag.png", folder.file("Bag/b.png"));
  auto r = run_attn("eval classifier --json --model " + run_file("best.safetensors") + " --data " +
                    folder.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = json::parse(r.out);
  EXPECT_EQ(doc["count"], 2);
  EXPECT_EQ(doc["confusion"][1].get<std::vector<int64_t>>().size(), 10u);
  int64_t bag_row = 0;
  for (const auto& v : doc["confusion"][8]) bag_row += v.get<int64_t>();
  EXPECT_EQ(bag_row, 1);  // the Bag folder became class 8

  fs::create_directories(folder.path() / "Hat");
  fs::copy_file(kFashionSamples + "/test0018-bag.png", folder.file("Hat/c.png"));
  auto unknown = run_attn("eval classifier --model " + run_file("best.safetensors") + " --data " +
                          folder.path().string());
  EXPECT_EQ(unknown.exit_code, 4);
  EXPECT_NE(unknown.err.find("class folder 'Hat'"), std::string::npos) << unknown.err;
}

TEST_F(TrainEval, ClassifyWarnsOnceWhenAFashionModelSeesPhotos) {
  const std::string samples = std::string(ATTNKIT_SOURCE_DIR) + "/samples";
  auto photos = run_attn("classify --model " + run_file("best.safetensors") + " " + samples +
                         "/chelsea.png " + samples + "/coffee.jpg");
  ASSERT_EQ(photos.exit_code, 0) << photos.err;
  const auto first = photos.err.find("only knows the 10 Fashion-MNIST clothing classes");
  ASSERT_NE(first, std::string::npos) << photos.err;
  EXPECT_EQ(photos.err.find("only knows", first + 1), std::string::npos) << "warned twice";
  auto items = run_attn("classify --model " + run_file("best.safetensors") + " " + kFashionSamples);
  ASSERT_EQ(items.exit_code, 0) << items.err;
  EXPECT_EQ(items.err.find("only knows"), std::string::npos) << items.err;
}

TEST_F(TrainEval, BadArgumentsAndFilesFailCleanly) {
  EXPECT_EQ(run_attn("train").exit_code, 2);
  EXPECT_EQ(run_attn("train frobnicate").exit_code, 2);
  EXPECT_EQ(run_attn("eval frobnicate").exit_code, 2);
  auto missing = run_attn("train classifier --data /no/such/folder --out " + dir_->file("x"));
  EXPECT_EQ(missing.exit_code, 4);
  EXPECT_NE(missing.err.find("/no/such/folder: not a directory"), std::string::npos) << missing.err;
  // A plain model file is not a training checkpoint.
  auto not_checkpoint = run_attn("train classifier --limit 300 --val-count 50 --epochs 1 --out " +
                                 dir_->file("y") + " --resume " + run_file("best.safetensors"));
  EXPECT_EQ(not_checkpoint.exit_code, 3);
  EXPECT_NE(not_checkpoint.err.find("not a training checkpoint"), std::string::npos)
      << not_checkpoint.err;
  auto bad_arch = run_attn("train classifier --arch vit_enormous --out " + dir_->file("z"));
  EXPECT_EQ(bad_arch.exit_code, 2);
  auto no_model = run_attn("eval classifier --model " + dir_->file("none.safetensors"));
  EXPECT_EQ(no_model.exit_code, 3);
  EXPECT_NE(no_model.err.find("none.safetensors"), std::string::npos) << no_model.err;
}

}  // namespace
}  // namespace attnkit::apps
