// tests/apps/caption_test.cpp: the real `attn caption` on sample images with a captioner model
// file (random weights): exit codes, JSON schema, attention grids, and errors.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/apps/cli_support.h"
#include "tests/apps/tiny_captioner.h"
#include "tests/vision/test_support.h"

namespace attnkit::apps {
namespace {

using nlohmann::json;

class CaptionCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new attnkit::testing::TempDir();
    save_tiny_captioner(dir_->file("captioner.safetensors"), 32, 48);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return dir_->file("captioner.safetensors"); }
  static attnkit::testing::TempDir* dir_;
};
attnkit::testing::TempDir* CaptionCli::dir_ = nullptr;

const std::string kSamples = std::string(ATTNKIT_SOURCE_DIR) + "/samples";

TEST_F(CaptionCli, JsonHasWordsProbabilitiesAndAttentionGrids) {
  auto r = run_attn("caption --model " + model() + " --beam 2 --max-len 5 --json " + kSamples +
                    "/chelsea.png " + kSamples + "/coffee.jpg");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = json::parse(r.out);
  ASSERT_EQ(doc["results"].size(), 2u);
  EXPECT_EQ(doc["beam"], 2);
  for (const auto& result : doc["results"]) {
    const auto& words = result["words"];
    ASSERT_GE(words.size(), 1u);
    ASSERT_LE(words.size(), 5u);
    std::string text;
    for (const auto& w : words) {
      text += (text.empty() ? "" : " ") + w["word"].get<std::string>();
      EXPECT_GT(w["probability"].get<double>(), 0.0);
      EXPECT_LE(w["probability"].get<double>(), 1.0);
      ASSERT_EQ(w["attention"].size(), 4u);     // 32 / 8 rows
      ASSERT_EQ(w["attention"][0].size(), 6u);  // 48 / 8 columns
      double sum = 0;
      for (const auto& row : w["attention"]) {
        for (const auto& v : row) sum += v.get<double>();
      }
      EXPECT_NEAR(sum, 1.0, 1e-4);
    }
    EXPECT_EQ(result["caption"], text);
  }
  // The table shows the same caption.
  auto table =
      run_attn("caption --model " + model() + " --beam 2 --max-len 5 " + kSamples + "/chelsea.png");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find(doc["results"][0]["caption"].get<std::string>()), std::string::npos)
      << table.out;
}

TEST_F(CaptionCli, ExitCodesForBadInputsAndModels) {
  attnkit::testing::TempDir tmp;
  std::ofstream(tmp.file("broken.png")) << "not a png";
  auto partial = run_attn("caption --model " + model() + " --jsonl " + tmp.file("broken.png") +
                          " " + kSamples + "/rocket.jpg");
  EXPECT_EQ(partial.exit_code, 1);
  EXPECT_NE(partial.err.find("broken.png"), std::string::npos) << partial.err;
  auto none = run_attn("caption --model " + model() + " " + tmp.file("broken.png"));
  EXPECT_EQ(none.exit_code, 4);
  EXPECT_EQ(run_attn("caption --model " + model() + " --beam 0 x.png").exit_code, 2);
  EXPECT_EQ(run_attn("caption --model " + model()).exit_code, 2);
  std::ofstream(tmp.file("junk.safetensors")) << "junk";
  auto junk = run_attn("caption --model " + tmp.file("junk.safetensors") + " " + kSamples);
  EXPECT_EQ(junk.exit_code, 3);
  EXPECT_NE(junk.err.find("junk.safetensors"), std::string::npos) << junk.err;
}

// --beam beyond the vocabulary and --max-len beyond its documented maximum are usage errors
// that name the limit, in every command that decodes captions.
TEST_F(CaptionCli, BeamAndMaxLenLimits) {
  attnkit::testing::TempDir tmp;
  const std::string image = kSamples + "/rocket.jpg";
  const std::string m = " --model " + model() + " ";
  auto wide = run_attn("caption" + m + "--beam 9 " + image);
  EXPECT_EQ(wide.exit_code, 2);
  EXPECT_NE(wide.err.find("--beam 9 is larger than the model's vocabulary (8 words)"),
            std::string::npos)
      << wide.err;
  EXPECT_EQ(run_attn("caption" + m + "--beam 8 " + image).exit_code, 0);
  auto long_caption = run_attn("caption" + m + "--max-len 1001 " + image);
  EXPECT_EQ(long_caption.exit_code, 2);
  EXPECT_NE(long_caption.err.find("--max-len must be between 1 and 1000, got 1001"),
            std::string::npos)
      << long_caption.err;
  auto overlay =
      run_attn("overlay --method caption" + m + "--beam 9 " + image + " -o " + tmp.file("o.png"));
  EXPECT_EQ(overlay.exit_code, 2);
  EXPECT_NE(overlay.err.find("(8 words)"), std::string::npos) << overlay.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("o.png")));
  auto overlay_long = run_attn("overlay --method caption" + m + "--max-len 5000 " + image + " -o " +
                               tmp.file("o.png"));
  EXPECT_EQ(overlay_long.exit_code, 2);
  EXPECT_NE(overlay_long.err.find("--max-len"), std::string::npos) << overlay_long.err;
  auto eval_wide = run_attn("eval captioner" + m + "--beam 9 --data " + tmp.file("none.json"));
  EXPECT_EQ(eval_wide.exit_code, 2);
  EXPECT_NE(eval_wide.err.find("(8 words)"), std::string::npos) << eval_wide.err;
  auto eval_long = run_attn("eval captioner" + m + "--max-len 1001 --data " + tmp.file("x.json"));
  EXPECT_EQ(eval_long.exit_code, 2);
  EXPECT_NE(eval_long.err.find("1000"), std::string::npos) << eval_long.err;
  for (const char* command : {"caption", "overlay", "eval captioner"}) {
    const auto help = run_attn(std::string(command) + " --help");
    EXPECT_NE(help.out.find("most words per caption (1 to 1000)"), std::string::npos)
        << command << "\n"
        << help.out;
  }
}

}  // namespace
}  // namespace attnkit::apps
