// tests/apps/cli_test.cpp: the real `attn` binary run end to end on samples/: exit codes, output
// formats, error messages, and nothing half-written.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "tests/apps/cli_support.h"
#include "tests/vision/test_support.h"
#include "vision/checkpoint/imagenet_labels.h"
#include "vision/checkpoint/model_file.h"
#include "vision/image/image_io.h"
#include "vision/models/vit.h"

namespace attnkit::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kSamples = std::string(ATTNKIT_SOURCE_DIR) + "/samples";

/// A small random ViT with ImageNet labels, saved once for all tests of this binary.
class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new attnkit::testing::TempDir();
    torch::manual_seed(0);
    const auto config = attnkit::testing::tiny_vit_config(32, 32, 1000);
    vision::VisionTransformer model(config);
    vision::ModelInfo info;
    info.config_json = config.to_json();
    info.labels = vision::imagenet1k_labels();
    info.preprocess.height = info.preprocess.width = 32;
    info.source = "cli_test";
    model_ = dir_->file("tiny.safetensors");
    vision::save_model(model_, *model, info);
  }
  static void TearDownTestSuite() { delete dir_; }
  static attnkit::testing::TempDir* dir_;
  static std::string model_;
};
attnkit::testing::TempDir* Cli::dir_ = nullptr;
std::string Cli::model_;

TEST_F(Cli, ClassifyJsonListsTopKInOrderForEverySample) {
  auto r = run_attn("classify --model " + model_ + " --topk 3 --json " + kSamples);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = json::parse(r.out);
  ASSERT_TRUE(doc["errors"].empty());
  ASSERT_GE(doc["results"].size(), 3u);
  for (const auto& result : doc["results"]) {
    EXPECT_TRUE(fs::exists(result["path"].get<std::string>()));
    const auto& preds = result["predictions"];
    ASSERT_EQ(preds.size(), 3u);
    for (size_t i = 0; i < preds.size(); ++i) {
      EXPECT_EQ(preds[i]["rank"], i + 1);
      const auto index = preds[i]["index"].get<int64_t>();
      EXPECT_EQ(preds[i]["label"], vision::imagenet1k_labels().at(index));
      if (i > 0) {
        EXPECT_GE(preds[i - 1]["probability"], preds[i]["probability"]);
      }
    }
  }
}

TEST_F(Cli, JsonlAndTableAgreeAndStdinListsWork) {
  const std::string cat = kSamples + "/chelsea.png";
  auto from_stdin = run_attn("classify --model " + model_ + " --topk 1 --jsonl -", cat + "\n");
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  auto single = json::parse(from_stdin.out);  // exactly one JSON line
  EXPECT_EQ(single["path"], cat);
  ASSERT_EQ(single["predictions"].size(), 1u);

  auto all = run_attn("classify --model " + model_ + " --topk 1 --jsonl " + kSamples);
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::istringstream lines(all.out);
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    auto obj = json::parse(line);
    EXPECT_TRUE(obj.contains("path"));
    EXPECT_EQ(obj["predictions"].size(), 1u);
  }
  EXPECT_GE(count, 3);

  // The table shows the same top-1 class, with its index, under the image's path.
  auto table = run_attn("classify --model " + model_ + " --topk 2 " + cat);
  ASSERT_EQ(table.exit_code, 0) << table.err;
  const auto& top = single["predictions"][0];
  EXPECT_EQ(table.out.rfind(cat + "\n", 0), 0u) << table.out;
  EXPECT_NE(table.out.find("%  " + top["label"].get<std::string>() + "  (" +
                           std::to_string(top["index"].get<int64_t>()) + ")"),
            std::string::npos)
      << table.out;
}

// Flip TTA gives a proper distribution per image, and the same ranking for an image and its
// mirror (the average is mirror-invariant).
TEST_F(Cli, FlipTtaIsMirrorInvariant) {
  attnkit::testing::TempDir tmp;
  // 36x36: the model's resize is then the identity and its 32x32 centre crop symmetric, so the
  // mirror's input tensor is exactly the original's mirror.
  cv::Mat cat;
  cv::resize(vision::load_image_rgb(kSamples + "/chelsea.png"), cat, cv::Size(36, 36));
  cv::Mat mirrored;
  cv::flip(cat, mirrored, 1);
  vision::save_image_rgb(tmp.file("cat.png"), cat);
  vision::save_image_rgb(tmp.file("mirror.png"), mirrored);
  auto a =
      run_attn("classify --model " + model_ + " --tta flip --topk 3 --json " + tmp.file("cat.png"));
  auto b = run_attn("classify --model " + model_ + " --tta flip --topk 3 --json " +
                    tmp.file("mirror.png"));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto pa = json::parse(a.out)["results"][0]["predictions"];
  const auto pb = json::parse(b.out)["results"][0]["predictions"];
  ASSERT_EQ(pa.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(pa[i]["index"], pb[i]["index"]);
    EXPECT_NEAR(pa[i]["probability"].get<double>(), pb[i]["probability"].get<double>(), 1e-4);
  }
}

TEST_F(Cli, OneBadFileDoesNotStopTheBatch) {
  attnkit::testing::TempDir tmp;
  std::ofstream(tmp.file("broken.png")) << "not a png at all";
  std::string sample;
  for (const auto& e : fs::directory_iterator(kSamples)) {
    if (e.path().extension() == ".png" || e.path().extension() == ".jpg")
      sample = e.path().string();
  }
  ASSERT_FALSE(sample.empty());
  auto r = run_attn("classify --model " + model_ + " --json " + tmp.file("broken.png") + " " +
                    sample + " " + tmp.file("missing.jpg"));
  EXPECT_EQ(r.exit_code, 1);
  auto doc = json::parse(r.out);
  EXPECT_EQ(doc["results"].size(), 1u);
  EXPECT_EQ(doc["errors"].size(), 2u);
  EXPECT_NE(
      r.err.find("attn classify: error: " + tmp.file("broken.png") + ": not a decodable image"),
      std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("missing.jpg: no such file"), std::string::npos) << r.err;
}

TEST_F(Cli, ReaderThreadKeepsInputOrderAndEveryErrorLine) {
  // Images are decoded ahead on a reader thread while the main thread prints; every result and
  // every error must still come out, each in input order, across many batches (a batch's
  // errors come before its results, as without the reader).
  attnkit::testing::TempDir tmp;
  std::string sample;
  for (const auto& e : fs::directory_iterator(fs::path(kSamples) / "fashion")) {
    if (e.path().extension() == ".png") sample = e.path().string();
  }
  ASSERT_FALSE(sample.empty());
  std::string args, stdin_list;
  std::vector<std::string> expected_results, expected_errors;
  for (int i = 0; i < 60; ++i) {
    const auto path = tmp.file("item" + std::to_string(100 + i) + ".png");
    if (i % 7 == 3) {
      std::ofstream(path) << "broken " << i;
      expected_errors.push_back(path);
    } else {
      fs::copy_file(sample, path);
      expected_results.push_back(path);
    }
    stdin_list += path + "\n";
  }
  auto r = run_attn("classify --model " + model_ + " --jsonl -b 4 -", stdin_list);
  EXPECT_EQ(r.exit_code, 1);
  std::vector<std::string> results, errors;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const auto doc = json::parse(line);
    (doc.contains("error") ? errors : results).push_back(doc["path"]);
  }
  EXPECT_EQ(results, expected_results);
  EXPECT_EQ(errors, expected_errors);
  std::vector<std::string> error_lines;
  std::istringstream err(r.err);
  for (std::string line; std::getline(err, line);) {
    if (line.find(": not a decodable image") == std::string::npos) continue;
    const auto start = line.find(tmp.file("item"));
    error_lines.push_back(line.substr(start, line.find(": not a") - start));
  }
  EXPECT_EQ(error_lines, expected_errors) << r.err;
}

TEST_F(Cli, ShardsTogetherAreTheWholeRunInAnyListingOrder) {
  // 3 shards of 24 images, 3 broken files and a missing path, each shard given the inputs in
  // another order: together their JSONL lines are the unsharded run's, each input exactly once.
  attnkit::testing::TempDir tmp;
  const std::string sample =
      kSamples + "/fashion/" +
      fs::directory_iterator(fs::path(kSamples) / "fashion")->path().filename().string();
  std::vector<std::string> paths;
  for (int i = 0; i < 27; ++i) {
    const auto path = tmp.file("s" + std::to_string(i) + ".png");
    if (i % 9 == 4) {
      std::ofstream(path) << "broken";
    } else {
      fs::copy_file(sample, path);
    }
    paths.push_back(path);
  }
  paths.push_back(tmp.file("missing.png"));
  auto lines_of = [](const std::string& out) {
    std::vector<std::string> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  };
  std::string forward, backward;
  for (const auto& path : paths) forward += path + "\n";
  for (auto it = paths.rbegin(); it != paths.rend(); ++it) backward += *it + "\n";

  // -b 1: every image its own forward pass, so no figure depends on which images share a batch.
  const auto whole = run_attn("classify --model " + model_ + " -b 1 --topk 2 --jsonl -", forward);
  ASSERT_EQ(whole.exit_code, 1) << whole.err;
  auto expected = lines_of(whole.out);
  ASSERT_EQ(expected.size(), paths.size());
  std::vector<std::string> together;
  for (int i = 0; i < 3; ++i) {
    const auto part = run_attn("classify --model " + model_ + " -b 1 --topk 2 --jsonl --shard " +
                                   std::to_string(i) + "/3 -",
                               i == 1 ? backward : forward);
    EXPECT_LE(part.exit_code, 1) << part.err;
    const auto lines = lines_of(part.out);
    EXPECT_GT(lines.size(), 0u) << "shard " << i;  // 28 inputs: each shard gets some
    together.insert(together.end(), lines.begin(), lines.end());
  }
  std::sort(expected.begin(), expected.end());
  std::sort(together.begin(), together.end());
  EXPECT_EQ(together, expected);

  // A shard that gets no input has finished its part: exit 0, no output.
  int empty = 0;
  for (int i = 0; i < 2; ++i) {
    const auto r = run_attn("classify --model " + model_ + " --jsonl --shard " + std::to_string(i) +
                            "/2 " + sample);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    empty += r.out.empty();
  }
  EXPECT_EQ(empty, 1);

  for (const std::string bad : {"3/3", "1", "a/2", "0/0", "-1/2", "1/2/3"}) {
    const auto r = run_attn("classify --model " + model_ + " --shard " + bad + " " + sample);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.err.find("--shard " + bad + ": "), std::string::npos) << r.err;
  }
  const auto one_file =
      run_attn("overlay --model " + model_ + " --shard 0/2 -o " + tmp.file("x.png") + " " + sample);
  EXPECT_EQ(one_file.exit_code, 2);
  EXPECT_NE(one_file.err.find("--out must be a directory"), std::string::npos) << one_file.err;
}

TEST_F(Cli, ExitCodesForUsageModelAndInputErrors) {
  EXPECT_EQ(run_attn("").exit_code, 2);
  EXPECT_EQ(run_attn("frobnicate").exit_code, 2);
  auto unknown = run_attn("classify --model " + model_ + " --no-such-flag x.png");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("attn classify: error:"), std::string::npos);
  EXPECT_EQ(run_attn("classify --model " + model_).exit_code, 2);  // no inputs
  EXPECT_EQ(run_attn("classify --model " + model_ + " --topk 0 " + kSamples).exit_code, 2);
  auto bad_tta = run_attn("classify --model " + model_ + " --tta mirror " + kSamples);
  EXPECT_EQ(bad_tta.exit_code, 2);
  EXPECT_NE(bad_tta.err.find("expected none or flip"), std::string::npos) << bad_tta.err;

  attnkit::testing::TempDir tmp;
  std::ofstream(tmp.file("junk.safetensors")) << "garbage";
  auto bad_model = run_attn("classify --model " + tmp.file("junk.safetensors") + " " + kSamples);
  EXPECT_EQ(bad_model.exit_code, 3);
  EXPECT_NE(bad_model.err.find("junk.safetensors"), std::string::npos) << bad_model.err;

  auto nothing = run_attn("classify --model " + model_ + " " + tmp.file("nope.jpg"));
  EXPECT_EQ(nothing.exit_code, 4);
}

TEST_F(Cli, HelpShowsDefaultsAndExitCodes) {
  auto r = run_attn("classify --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--topk"), std::string::npos);
  EXPECT_NE(r.out.find("(=5)"), std::string::npos);
  EXPECT_NE(r.out.find("Exit codes"), std::string::npos);
  EXPECT_EQ(run_attn("--help").exit_code, 0);
}

TEST_F(Cli, InspectReportsArchitectureAndParameters) {
  auto r = run_attn("inspect --json " + model_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = json::parse(r.out);
  EXPECT_EQ(doc["arch"], "vit");
  EXPECT_EQ(doc["config"]["dim"], 24);
  EXPECT_EQ(doc["num_labels"], 1000);
  EXPECT_EQ(doc["source"], "cli_test");
  vision::VisionTransformer reference(vision::ViTConfig::from_json(doc["config"].dump()));
  int64_t count = 0;
  for (const auto& p : reference->parameters()) count += p.numel();
  EXPECT_EQ(doc["parameters"], count);
}

TEST_F(Cli, ImportWritesALoadableModelAndFailsCleanly) {
  attnkit::testing::TempDir tmp;
  const std::string oracle = std::string(ATTNKIT_TEST_DATA_DIR) + "/vit_oracle";
  ASSERT_EQ(
      attnkit::testing::run_oracle("vit_reference.py --out " + oracle, oracle + "/manifest.json"),
      "");
  auto r = run_attn("import " + oracle + "/small/timm -o " + tmp.file("m.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto loaded = vision::load_vit(tmp.file("m.safetensors"));
  EXPECT_EQ(loaded.config.num_heads, 4);
  EXPECT_EQ(loaded.info.labels.size(), 10u);

  // A wrong head count cannot load: exit 3, and no output file is left behind.
  auto bad = run_attn("import " + oracle + "/small/torchvision.safetensors -o " +
                      tmp.file("bad.safetensors"));
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_NE(bad.err.find("--heads"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(tmp.file("bad.safetensors")));
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace attnkit::apps
