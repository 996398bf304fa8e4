// tests/vision/api/attnkit_api_test.cpp: the embedding API (vision/api/attnkit.h) on the shipped
// models gives what the library underneath gives, and refuses bad input with the documented
// exceptions.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "tests/vision/test_support.h"
#include "vision/api/attnkit.h"
#include "vision/checkpoint/captioner_file.h"
#include "vision/checkpoint/model_file.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"
#include "vision/models/caption_decoder.h"
#include "vision/models/vit_explain.h"

namespace {

namespace fs = std::filesystem;

const std::string kWeights = std::string(ATTNKIT_SOURCE_DIR) + "/weights/";
const std::string kClassifierPath = kWeights + "fashion-vit.safetensors";
const std::string kCaptionerPath = kWeights + "scenes-captioner.safetensors";

std::vector<std::string> fashion_samples() {
  std::vector<std::string> paths;
  for (const auto& e :
       fs::directory_iterator(std::string(ATTNKIT_SOURCE_DIR) + "/samples/fashion")) {
    paths.push_back(e.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

std::string letters(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (std::isalpha(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(c));
  }
  return out;
}

TEST(AttnkitApi, ClassifyGivesTheModelsProbabilitiesAndNames) {
  const attnkit::Classifier classifier(kClassifierPath);
  EXPECT_EQ(classifier.num_classes(), 10);
  ASSERT_EQ(classifier.labels().size(), 10u);
  auto loaded = attnkit::vision::load_vit(kClassifierPath);
  int right = 0;
  std::vector<cv::Mat> images;
  for (const auto& path : fashion_samples()) {
    const auto rgb = attnkit::load_image(path);
    images.push_back(rgb);
    const auto predictions = classifier.classify(rgb, 3);
    ASSERT_EQ(predictions.size(), 3u);
    EXPECT_GE(predictions[0].probability, predictions[1].probability);
    EXPECT_GE(predictions[1].probability, predictions[2].probability);
    right += letters(fs::path(path).filename().string()).find(letters(predictions[0].label)) !=
             std::string::npos;
    // The same numbers as the model run directly on the same preprocessing.
    torch::NoGradGuard no_grad;
    const auto input = attnkit::vision::preprocess_image(rgb, loaded.info.preprocess).unsqueeze(0);
    const auto expected = torch::softmax(loaded.model->forward(input), 1)[0];
    for (const auto& p : predictions) {
      EXPECT_NEAR(p.probability, expected[p.index].item<double>(), 1e-5) << path;
      EXPECT_EQ(p.label, loaded.info.labels[p.index]);
    }
  }
  EXPECT_GE(right, 9) << "the shipped model names at least 9 of its 10 samples";
  // A batch gives each image's answer.
  const auto batch = classifier.classify(images, 1);
  ASSERT_EQ(batch.size(), images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const auto single = classifier.classify(images[i], 1);
    EXPECT_EQ(batch[i][0].index, single[0].index);
    EXPECT_NEAR(batch[i][0].probability, single[0].probability, 1e-5);
  }
  // k above the class count gives every class.
  EXPECT_EQ(classifier.classify(images[0], 50).size(), 10u);
}

TEST(AttnkitApi, ExplainGivesExplainVitsMapsAndOverlayDrawsThemOnTheImage) {
  const attnkit::Classifier classifier(kClassifierPath);
  auto loaded = attnkit::vision::load_vit(kClassifierPath);
  const auto rgb = attnkit::load_image(fashion_samples().front());
  const auto input = attnkit::vision::preprocess_image(rgb, loaded.info.preprocess).unsqueeze(0);
  for (const std::string method : {"rollout", "grad-rollout", "relevance", "cls"}) {
    for (const int64_t target : {int64_t{-1}, int64_t{5}}) {
      const auto map = classifier.explain(rgb, method, target);
      attnkit::vision::ExplainOptions options;
      options.method = attnkit::vision::map_method_from_string(method);
      options.target_class = target;
      const auto expected = attnkit::vision::explain_vit(loaded.model, input, options);
      ASSERT_EQ(map.grid.type(), CV_32F);
      ASSERT_EQ(map.grid.rows, expected.maps.size(2));
      ASSERT_EQ(map.grid.cols, expected.maps.size(3));
      EXPECT_EQ(map.method, method);
      const bool specific = method == "grad-rollout" || method == "relevance";
      EXPECT_EQ(map.class_index, specific ? expected.classes[0].item<int64_t>() : -1);
      if (specific && target >= 0) {
        EXPECT_EQ(map.class_index, target);
      }
      for (int r = 0; r < map.grid.rows; ++r) {
        for (int c = 0; c < map.grid.cols; ++c) {
          EXPECT_NEAR(map.grid.at<float>(r, c), expected.maps[0][0][r][c].item<float>(), 1e-6)
              << method << " at " << r << "," << c;
        }
      }
    }
  }
  // One hot cell, top left: jet paints it red there and blue in the opposite corner.
  attnkit::AttentionMap hot{cv::Mat::zeros(7, 7, CV_32F), "rollout", -1};
  hot.grid.at<float>(0, 0) = 1.0f;
  cv::Mat big;
  cv::resize(rgb, big, cv::Size(280, 280), 0, 0, cv::INTER_NEAREST);
  attnkit::OverlayOptions style;
  style.colorbar = false;
  const auto drawn = classifier.overlay(big, hot, style);
  ASSERT_EQ(drawn.size(), big.size());
  ASSERT_EQ(drawn.type(), CV_8UC3);
  const auto red_minus_blue = [&](cv::Rect r) {
    const auto mean = cv::mean(drawn(r));
    return mean[0] - mean[2];  // RGB order
  };
  EXPECT_GT(red_minus_blue(cv::Rect(0, 0, 30, 30)), 60);
  EXPECT_LT(red_minus_blue(cv::Rect(240, 240, 40, 40)), -60);
}

TEST(AttnkitApi, CaptionGivesBeamSearchsCaptionWithWordMaps) {
  const attnkit::Captioner captioner(kCaptionerPath);
  auto loaded = attnkit::vision::load_captioner(kCaptionerPath);
  const auto rgb =
      attnkit::load_image(std::string(ATTNKIT_SOURCE_DIR) + "/samples/scenes/scene_000000.png");
  const auto caption = captioner.caption(rgb, 3, 20);
  torch::NoGradGuard no_grad;
  const auto input = attnkit::vision::preprocess_image(rgb, loaded.info.preprocess).unsqueeze(0);
  const auto expected = attnkit::vision::beam_search(loaded.model, loaded.model->encode(input),
                                                     loaded.vocabulary, 3, 20)[0];
  EXPECT_EQ(caption.text, expected.text());
  EXPECT_FALSE(caption.text.empty());
  EXPECT_NEAR(caption.log_prob, expected.log_prob, 1e-5);
  ASSERT_EQ(caption.words.size(), expected.words.size());
  for (const auto& w : caption.words) {
    EXPECT_GT(w.probability, 0.0);
    ASSERT_EQ(w.attention.type(), CV_32F);
    EXPECT_NEAR(cv::sum(w.attention)[0], 1.0, 1e-4) << w.word;
  }
  const auto drawn = captioner.overlay(rgb, caption.words.front());
  EXPECT_EQ(drawn.size(), rgb.size());
  // Greedy is beam 1.
  EXPECT_EQ(captioner.caption(rgb, 1).text,
            attnkit::vision::greedy_decode(loaded.model, loaded.model->encode(input),
                                           loaded.vocabulary, 20)[0]
                .text());
}

TEST(AttnkitApi, RefusesBadInputWithTheDocumentedExceptions) {
  attnkit::Classifier classifier(kClassifierPath);
  const auto rgb = attnkit::load_image(fashion_samples().front());
  // Moving keeps the model.
  attnkit::Classifier moved = std::move(classifier);
  EXPECT_EQ(moved.classify(rgb, 1).size(), 1u);
  EXPECT_THROW(moved.classify(cv::Mat(), 1), std::invalid_argument);
  EXPECT_THROW(moved.classify(cv::Mat(28, 28, CV_8UC4, cv::Scalar::all(0)), 1),
               std::invalid_argument);
  EXPECT_THROW(moved.classify(cv::Mat(28, 28, CV_32FC3, cv::Scalar::all(0)), 1),
               std::invalid_argument);
  EXPECT_THROW(moved.classify(rgb, 0), std::invalid_argument);
  EXPECT_THROW(moved.explain(rgb, "saliency"), std::invalid_argument);
  EXPECT_THROW(moved.explain(rgb, "grad-rollout", 10), std::invalid_argument);
  EXPECT_THROW(moved.explain(rgb, "pool"), std::invalid_argument);
  attnkit::OverlayOptions bad_alpha;
  bad_alpha.alpha = 2;
  const auto map = moved.explain(rgb);
  EXPECT_THROW(moved.overlay(rgb, map, bad_alpha), std::invalid_argument);
  attnkit::OverlayOptions bad_colormap;
  bad_colormap.colormap = "rainbow-unicorn";
  EXPECT_THROW(moved.overlay(rgb, map, bad_colormap), std::invalid_argument);
  EXPECT_THROW(moved.overlay(rgb, attnkit::AttentionMap{}), std::invalid_argument);
  // Grey images are expanded, as load_image would.
  cv::Mat grey;
  cv::extractChannel(rgb, grey, 0);
  EXPECT_EQ(moved.classify(grey, 1).front().index, moved.classify(rgb, 1).front().index);

  attnkit::testing::TempDir tmp;
  try {
    attnkit::Classifier missing(tmp.file("none.safetensors"));
    FAIL() << "no exception";
  } catch (const attnkit::vision::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("none.safetensors"), std::string::npos) << e.what();
  }
  // A captioner file is not a classifier, and the message says which file.
  try {
    attnkit::Classifier wrong(kCaptionerPath);
    FAIL() << "no exception";
  } catch (const attnkit::vision::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("scenes-captioner"), std::string::npos) << e.what();
  }
  try {
    attnkit::Classifier fast(kClassifierPath, attnkit::LoadOptions{"fast"});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "precision must be fp32, bf16, int8 or auto, got 'fast'");
  }
  EXPECT_THROW(attnkit::load_image(tmp.file("none.png")), attnkit::vision::ImageError);
  EXPECT_THROW(attnkit::save_image(tmp.file("out.gif"), rgb), attnkit::vision::ImageError);
  EXPECT_FALSE(fs::exists(tmp.file("out.gif")));
  const attnkit::Captioner captioner(kCaptionerPath);
  EXPECT_THROW(captioner.caption(rgb, 0), std::invalid_argument);
  EXPECT_THROW(captioner.caption(rgb, 3, 0), std::invalid_argument);
}

TEST(AttnkitApi, DefaultModelPathFollowsAttnkitWeights) {
  EXPECT_THROW(attnkit::default_model_path("detector"), std::invalid_argument);
  const char* old = std::getenv("ATTNKIT_WEIGHTS");
  const std::string saved = old ? old : "";
  setenv("ATTNKIT_WEIGHTS", "/opt/models", 1);
  EXPECT_EQ(attnkit::default_model_path("classifier"), "/opt/models/fashion-vit.safetensors");
  EXPECT_EQ(attnkit::default_model_path("captioner"), "/opt/models/scenes-captioner.safetensors");
  unsetenv("ATTNKIT_WEIGHTS");
  // The test program is in the build tree: the source tree's weights (or an installed copy
  // in the install prefix) are found.
  const auto found = attnkit::default_model_path("classifier");
  EXPECT_TRUE(fs::exists(found)) << found;
  EXPECT_EQ(fs::path(found).filename(), "fashion-vit.safetensors");
  if (old) setenv("ATTNKIT_WEIGHTS", saved.c_str(), 1);
}

}  // namespace
