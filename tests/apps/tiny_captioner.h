// tests/apps/tiny_captioner.h: a small random-weight captioner file for the CLI tests.
#pragma once

#include <string>

#include <torch/torch.h>

#include "tests/vision/test_support.h"
#include "vision/checkpoint/captioner_file.h"
#include "vision/models/captioner.h"
#include "vision/models/vocabulary.h"

namespace attnkit::apps {

/// Writes a captioner with random weights (seed 0) for (height, width) RGB input: a tiny ViT
/// encoder, an 8-word vocabulary ("a", "bag", "above", "dress" after the specials), widths 16.
inline void save_tiny_captioner(const std::string& path, int64_t height, int64_t width) {
  torch::manual_seed(0);
  vision::CaptionerConfig config;
  config.encoder = attnkit::testing::tiny_vit_config(height, width, 0);
  const auto vocabulary = vision::Vocabulary::from_words(
      {"<pad>", "<start>", "<end>", "<unk>", "a", "bag", "above", "dress"});
  config.vocab_size = vocabulary.size();
  config.embed_dim = 16;
  config.hidden_dim = 16;
  config.attention_dim = 8;
  vision::Captioner model(config);
  vision::ModelInfo info;
  info.preprocess.height = height;
  info.preprocess.width = width;
  info.source = "random weights (test)";
  vision::save_captioner(path, model, vocabulary, info);
}

}  // namespace attnkit::apps
