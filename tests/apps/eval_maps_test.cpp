// tests/apps/eval_maps_test.cpp: the real `attn eval maps`, `attn eval captioner --faithfulness`
// and `attn overlay --method relevance|gradcam` end to end: the JSON's invariants, the plot, the
// sanity check's stages, photo folders with a bad file, and the usage errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/apps/cli_support.h"
#include "tests/vision/test_support.h"
#include "vision/checkpoint/model_file.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"
#include "vision/models/vit_explain.h"

namespace attnkit::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kSamples = std::string(ATTNKIT_SOURCE_DIR) + "/samples";

// The curves start and end at the same two images: the whole image (deletion's first point,
// insertion's last) and the whole baseline (deletion's last, insertion's first), whatever the map.
TEST(EvalMapsCli, JsonCurvesMeetAtTheWholeImageAndTheWholeBaseline) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir tmp;
  const auto r = run_attn(
      "eval maps --count 12 --methods rollout,relevance,gradcam,random "
      "--steps 7 --road-percentiles 50,80 --json -t 1 --plot " +
      tmp.file("curves.png"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["count"], 12);
  EXPECT_EQ(j["baseline"], "zero");
  const auto fractions = j["fractions"].get<std::vector<double>>();
  ASSERT_EQ(fractions.size(), 8u);
  EXPECT_EQ(fractions.front(), 0.0);
  EXPECT_EQ(fractions.back(), 1.0);
  ASSERT_EQ(j["methods"].size(), 4u);
  const auto first = j["methods"][0];
  for (const auto& m : j["methods"]) {
    const auto deletion = m["deletion_curve"].get<std::vector<double>>();
    const auto insertion = m["insertion_curve"].get<std::vector<double>>();
    ASSERT_EQ(deletion.size(), 8u);
    EXPECT_NEAR(deletion.front(), insertion.back(), 1e-6) << m["name"];
    EXPECT_NEAR(deletion.back(), insertion.front(), 1e-6) << m["name"];
    EXPECT_NEAR(deletion.front(), first["deletion_curve"][0].get<double>(), 1e-6) << m["name"];
    for (const char* metric :
         {"deletion_auc", "insertion_auc", "confidence_change", "drop_in_confidence",
          "increase_in_confidence", "road_morf", "road_lerf", "road_combined"}) {
      ASSERT_TRUE(m["metrics"].contains(metric)) << m["name"] << " " << metric;
      EXPECT_EQ(m["metrics"][metric]["count"], 12);
      EXPECT_LE(m["metrics"][metric]["low"].get<double>(),
                m["metrics"][metric]["high"].get<double>());
    }
  }
  const auto plot = vision::load_image_rgb(tmp.file("curves.png"));
  EXPECT_GT(plot.cols, 600);
}

// Rollout ignores the head, so randomising the head leaves its maps exactly as they were; the
// stages run from the head down to the embedding. Random maps join unasked, and are not checked.
TEST(EvalMapsCli, SanityCheckStagesAndRolloutIgnoringTheHead) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto r = run_attn(
      "eval maps --count 8 --methods rollout,grad-rollout --steps 4 "
      "--road-percentiles none --sanity --json -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  const auto stages = j["sanity"]["stages"].get<std::vector<std::string>>();
  ASSERT_GE(stages.size(), 3u);
  EXPECT_EQ(stages.front(), "head");
  EXPECT_EQ(stages.back(), "embedding");
  EXPECT_EQ(j["sanity"]["methods"], json::array({"rollout", "grad-rollout"}));
  EXPECT_EQ(j["methods"].size(), 3u);
  EXPECT_NEAR(j["sanity"]["correlation"][0][0].get<double>(), 1.0, 1e-9);
  EXPECT_LT(j["sanity"]["correlation"].back()[1].get<double>(), 0.9);
  EXPECT_FALSE(j["methods"][0]["metrics"].contains("road_morf"));
}

// A folder of photos is explained at the model's top-1; a bad file is named and skipped.
TEST(EvalMapsCli, PhotoFoldersGoOnPastABadFile) {
  attnkit::testing::TempDir tmp;
  fs::create_directories(tmp.file("photos"));
  for (const char* name : {"test0000-ankle-boot.png", "test0001-pullover.png"}) {
    fs::copy_file(kSamples + "/fashion/" + name, tmp.file(std::string("photos/") + name));
  }
  std::ofstream(tmp.file("photos/broken.png")) << "not an image";
  auto r = run_attn("eval maps --data " + tmp.file("photos") +
                    " --methods relevance,random --steps 4 --road-percentiles none -t 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("broken.png"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("2 images"), std::string::npos) << r.out;
  r = run_attn("eval maps --data " + tmp.file("photos") + " --target label");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("without labels"), std::string::npos) << r.err;
}

TEST(EvalMapsCli, UsageErrorsNameTheOption) {
  struct Case {
    std::string args, expected;
    int exit_code;
  };
  for (const auto& c :
       std::vector<Case>{{"--methods rollout,saliency", "cls, rollout, grad-rollout", 2},
                         {"--methods pool", "attention-pool", 2},
                         {"--baseline noise", "--baseline", 2},
                         {"--road-percentiles 10,120", "--road-percentiles", 2},
                         {"--target best", "--target", 2},
                         {"--steps -1", "--steps", 2},
                         {"--data /nonexistent/folder", "/nonexistent/folder", 4},
                         {"--model /nonexistent.safetensors", "/nonexistent.safetensors", 3}}) {
    const auto r = run_attn("eval maps " + c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << c.args << ": " << r.err;
  }
}

// The overlay's grids for the new methods are explain_vit's for the same preprocessed image.
TEST(EvalMapsCli, OverlayRelevanceAndGradCamGridsAreTheLibrarysMaps) {
  attnkit::testing::TempDir tmp;
  const std::string image = kSamples + "/fashion/test0000-ankle-boot.png";
  auto loaded =
      vision::load_vit(std::string(ATTNKIT_SOURCE_DIR) + "/weights/fashion-vit.safetensors");
  const auto input =
      vision::preprocess_image(vision::load_image_rgb(image), loaded.info.preprocess).unsqueeze(0);
  for (const std::string method : {"relevance", "gradcam"}) {
    const auto out = tmp.file(method + ".png");
    const auto r = run_attn("overlay " + image + " --method " + method + " --class 5 --json -o " +
                            out + " -t 1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ifstream in(out + ".json");
    const auto j = json::parse(in);
    EXPECT_EQ(j["method"], method);
    EXPECT_EQ(j["class"], 5);
    vision::ExplainOptions options;
    options.method = vision::map_method_from_string(method);
    options.target_class = 5;
    const auto expected = vision::explain_vit(loaded.model, input, options).maps[0][0];
    const auto grid = j["maps"][0].get<std::vector<std::vector<double>>>();
    ASSERT_EQ(static_cast<int64_t>(grid.size()), expected.size(0));
    for (int64_t y = 0; y < expected.size(0); ++y) {
      for (int64_t x = 0; x < expected.size(1); ++x) {
        EXPECT_NEAR(grid[y][x], expected[y][x].item<double>(), 1e-5 + 1e-4 * std::abs(grid[y][x]))
            << method << " " << y << "," << x;
      }
    }
  }
  auto r = run_attn("overlay " + image + " --method rollout --class 5 -o " + tmp.file("x.png"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("grad-rollout, relevance or gradcam"), std::string::npos) << r.err;
  r = run_attn("overlay " + image + " --method relevance --layer 0 -o " + tmp.file("x.png"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--layer"), std::string::npos) << r.err;
}

// On the shipped scenes captioner, masking the cells a word's attention picked lowers the word's
// probability more than masking as many random cells.
TEST(EvalMapsCli, CaptionerWordMapsAreFaithful) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir tmp;
  auto r =
      run_attn("data scenes --out " + tmp.file("scenes") + " --split test --count 60 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_attn("eval captioner --data " + tmp.file("scenes/scenes.json") +
               " --faithfulness --json -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto f = json::parse(r.out)["faithfulness"];
  EXPECT_GT(f["words"].get<int64_t>(), 200);
  EXPECT_GT(f["difference"]["low"].get<double>(), 0.0) << f.dump();
  EXPECT_GT(f["attended_drop"]["mean"].get<double>(), 5 * f["random_drop"]["mean"].get<double>())
      << f.dump();
  // Words that name an object of the scene depend on their cells most.
  const auto objects = f["object_words"];
  EXPECT_GT(objects["words"].get<int64_t>(), 50);
  EXPECT_GT(objects["difference"]["low"].get<double>(), 0.0) << objects.dump();
  EXPECT_GT(objects["difference"]["mean"].get<double>(), f["difference"]["mean"].get<double>());
  r = run_attn("eval captioner --data " + tmp.file("scenes/scenes.json") +
               " --faithfulness --faithfulness-mass 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--faithfulness-mass"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace attnkit::apps
