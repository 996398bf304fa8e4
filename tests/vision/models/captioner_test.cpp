// tests/vision/models/captioner_test.cpp: the SAT captioner's shapes and modes, its use of the
// shared SpatialAttention, and decoding: beam 1 equals greedy, a batch equals its images decoded
// one by one, captions are never empty and stop at max_len.
#include <type_traits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "attention/attention_pool.h"
#include "tests/vision/test_support.h"
#include "vision/checkpoint/model_file.h"
#include "vision/errors.h"
#include "vision/models/caption_decoder.h"
#include "vision/models/captioner.h"

namespace attnkit::vision {
namespace {

// The ViT's attention-pool head and the captioner hold the same attention class.
static_assert(std::is_same_v<decltype(CaptionerImpl::attention),
                             decltype(attention::AttentionPoolImpl::attention)>);

Vocabulary test_vocabulary() {
  return Vocabulary::from_words(
      {"<pad>", "<start>", "<end>", "<unk>", "a", "bag", "above", "dress", "left", "of"});
}

CaptionerConfig test_config(attention::AttentionMode mode) {
  CaptionerConfig c;
  c.encoder = attnkit::testing::tiny_vit_config(32, 32, 0);
  c.vocab_size = test_vocabulary().size();
  c.embed_dim = 16;
  c.hidden_dim = 24;
  c.attention_dim = 12;
  c.mode = mode;
  c.dropout = 0.0;
  return c;
}

TEST(Captioner, TeacherForcingShapesAndSoftWeights) {
  torch::manual_seed(0);
  Captioner model(test_config(attention::AttentionMode::kSoft));
  auto encoded = model->encode(torch::randn({3, 3, 32, 48}));  // non-square: 4x6 grid
  EXPECT_EQ(encoded.grid_height, 4);
  EXPECT_EQ(encoded.grid_width, 6);
  EXPECT_EQ(encoded.features.sizes(), (std::vector<int64_t>{3, 24, 24}));  // class token dropped
  auto captions = torch::tensor({{1, 4, 5, 2}, {1, 4, 7, 2}, {1, 5, 2, 0}});
  auto out = model->forward(encoded.features, captions);
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 3, 10}));
  EXPECT_EQ(out.weights.sizes(), (std::vector<int64_t>{3, 3, 24}));
  EXPECT_TRUE(torch::allclose(out.weights.sum(-1), torch::ones({3, 3})));
  EXPECT_FALSE(out.log_probs.defined());
  // Gradients reach the encoder through the attention.
  torch::cross_entropy_loss(out.logits.reshape({-1, 10}), captions.narrow(1, 1, 3).reshape({-1}))
      .backward();
  EXPECT_GT(model->encoder->patch_embed->proj->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(model->attention->feature_proj->weight.grad().abs().sum().item<double>(), 0);
}

TEST(Captioner, HardAttentionSamplesOneCellWithItsLogProbability) {
  torch::manual_seed(1);
  Captioner model(test_config(attention::AttentionMode::kHard));
  model->train();
  auto encoded = model->encode(torch::randn({2, 3, 32, 32}));
  auto captions = torch::tensor({{1, 4, 5, 2}, {1, 4, 7, 2}});
  auto out = model->forward(encoded.features, captions);
  EXPECT_TRUE(torch::equal(out.weights.sum(-1), torch::ones({2, 3})));
  EXPECT_TRUE(torch::equal(out.weights.amax(-1), torch::ones({2, 3})));  // one-hot
  ASSERT_TRUE(out.log_probs.defined());
  auto picked = (out.probabilities * out.weights).sum(-1);
  EXPECT_TRUE(torch::allclose(out.log_probs, picked.log(), 1e-5, 1e-6));
  // With the expected context (per image) the output differs from the sampled one, only there.
  torch::manual_seed(2);
  auto sampled = model->forward(encoded.features, captions, torch::tensor({false, false}));
  torch::manual_seed(2);
  auto expected = model->forward(encoded.features, captions, torch::tensor({true, false}));
  EXPECT_FALSE(torch::allclose(sampled.logits[0], expected.logits[0]));
  EXPECT_TRUE(torch::allclose(sampled.logits[1], expected.logits[1]));
  model->eval();
  auto argmax = model->forward(encoded.features, captions);
  EXPECT_TRUE(torch::equal(argmax.weights.argmax(-1), argmax.probabilities.argmax(-1)));
}

TEST(CaptionDecoding, BeamOfOneEqualsGreedy) {
  const auto vocabulary = test_vocabulary();
  for (uint64_t seed = 0; seed < 5; ++seed) {
    torch::manual_seed(seed);
    Captioner model(test_config(attention::AttentionMode::kSoft));
    auto encoded = model->encode(torch::randn({4, 3, 32, 40}));
    const auto greedy = greedy_decode(model, encoded, vocabulary, 8);
    const auto beam = beam_search(model, encoded, vocabulary, 1, 8);
    ASSERT_EQ(greedy.size(), 4u);
    ASSERT_EQ(beam.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(greedy[i].text(), beam[i].text()) << "seed " << seed << " image " << i;
      EXPECT_NEAR(greedy[i].log_prob, beam[i].log_prob, 1e-5);
      EXPECT_EQ(greedy[i].ended, beam[i].ended);
      ASSERT_FALSE(greedy[i].words.empty());
      EXPECT_EQ(greedy[i].words[0].attention.sizes(), (std::vector<int64_t>{4, 5}));
      EXPECT_NEAR(greedy[i].words[0].attention.sum().item<double>(), 1.0, 1e-5);
      EXPECT_NEAR(beam[i].words.back().probability, greedy[i].words.back().probability, 1e-6);
    }
  }
}

TEST(CaptionDecoding, NeverEmptyAndStopsAtMaxLen) {
  const auto vocabulary = test_vocabulary();
  torch::manual_seed(3);
  Captioner model(test_config(attention::AttentionMode::kSoft));
  auto encoded = model->encode(torch::randn({2, 3, 32, 32}));
  torch::NoGradGuard no_grad;
  // <end> always wins: captions still get exactly one word.
  model->out_word->bias.zero_();
  model->out_word->bias[Vocabulary::kEnd] = 100.0;
  for (int64_t beam : {1, 3}) {
    for (const auto& c : beam_search(model, encoded, vocabulary, beam, 10)) {
      EXPECT_EQ(c.words.size(), 1u) << "beam " << beam;
      EXPECT_TRUE(c.ended);
    }
  }
  // <end> never comes: captions stop at max_len, marked unfinished.
  model->out_word->bias[Vocabulary::kEnd] = -100.0;
  for (const auto& c : greedy_decode(model, encoded, vocabulary, 6)) {
    EXPECT_EQ(c.words.size(), 6u);
    EXPECT_FALSE(c.ended);
  }
  for (const auto& c : beam_search(model, encoded, vocabulary, 3, 6)) {
    EXPECT_EQ(c.words.size(), 6u);
    EXPECT_FALSE(c.ended);
    for (const auto& w : c.words) {
      EXPECT_GE(w.index, 4);  // no special tokens
    }
  }
}

// Each image's caption is its own: decoding a batch gives what decoding each image alone gives,
// including images that finish early while others go on to max_len.
TEST(CaptionDecoding, BatchEqualsImageByImage) {
  const auto vocabulary = test_vocabulary();
  for (uint64_t seed = 0; seed < 3; ++seed) {
    torch::manual_seed(seed);
    Captioner model(test_config(attention::AttentionMode::kSoft));
    auto encoded = model->encode(torch::randn({5, 3, 32, 40}));
    for (int64_t beam : {1, 2, 3, 5}) {
      const auto batch = beam_search(model, encoded, vocabulary, beam, 7);
      ASSERT_EQ(batch.size(), 5u);
      for (int64_t i = 0; i < 5; ++i) {
        EncodedImages one{encoded.features.narrow(0, i, 1), encoded.grid_height,
                          encoded.grid_width};
        const auto alone = beam_search(model, one, vocabulary, beam, 7);
        ASSERT_EQ(alone.size(), 1u);
        const auto& a = alone[0];
        const auto& b = batch[static_cast<size_t>(i)];
        const std::string where = "seed " + std::to_string(seed) + " beam " + std::to_string(beam) +
                                  " image " + std::to_string(i);
        EXPECT_EQ(a.text(), b.text()) << where;
        EXPECT_EQ(a.ended, b.ended) << where;
        EXPECT_NEAR(a.log_prob, b.log_prob, 1e-5) << where;
        ASSERT_EQ(a.words.size(), b.words.size()) << where;
        for (size_t w = 0; w < a.words.size(); ++w) {
          EXPECT_NEAR(a.words[w].probability, b.words[w].probability, 1e-6) << where;
          EXPECT_TRUE(torch::allclose(a.words[w].attention, b.words[w].attention, 1e-5, 1e-6))
              << where;
        }
      }
    }
  }
}

// A model whose <end> never wins decodes to max_len with every word's own attention map.
TEST(CaptionDecoding, LongCaptionsKeepEveryWordsAttention) {
  const auto vocabulary = test_vocabulary();
  torch::manual_seed(4);
  Captioner model(test_config(attention::AttentionMode::kSoft));
  auto encoded = model->encode(torch::randn({2, 3, 32, 32}));
  {
    torch::NoGradGuard no_grad;
    model->out_word->bias[Vocabulary::kEnd] = -100.0;
  }
  const auto greedy = greedy_decode(model, encoded, vocabulary, 300);
  const auto beam = beam_search(model, encoded, vocabulary, 1, 300);
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(beam[i].words.size(), 300u);
    EXPECT_EQ(beam[i].text(), greedy[i].text());
    for (size_t w = 0; w < 300; w += 37) {
      EXPECT_TRUE(torch::allclose(beam[i].words[w].attention, greedy[i].words[w].attention))
          << "word " << w;
    }
  }
}

// An encoder cut at an earlier block (--encoder-depth) holds the source's first blocks, no
// others; a deeper target is refused.
TEST(Captioner, EncoderCutAtAnEarlierBlockTakesTheSourcesFirstBlocks) {
  torch::manual_seed(0);
  LoadedViT source;
  source.config = attnkit::testing::tiny_vit_config(32, 32, 5);
  source.config.depth = 3;
  source.model = VisionTransformer(source.config);
  source.model->eval();

  auto cut = test_config(attention::AttentionMode::kSoft);
  cut.encoder = source.config;
  cut.encoder.depth = 1;
  Captioner model(cut);
  model->eval();
  EXPECT_GT(load_vit_trunk(model->encoder, source, "source.safetensors"), 0);

  const auto source_tensors = source.model->named_parameters(true);
  int64_t compared = 0;
  for (const auto& item : model->encoder->named_parameters(true)) {
    ASSERT_TRUE(source_tensors.contains(item.key())) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), source_tensors[item.key()])) << item.key();
    ++compared;
  }
  EXPECT_GT(compared, 0);
  EXPECT_FALSE(model->encoder->named_parameters(true).contains("blocks.1.norm1.weight"));

  auto deeper = cut;
  deeper.encoder.depth = 4;
  Captioner too_deep(deeper);
  EXPECT_THROW(load_vit_trunk(too_deep->encoder, source, "source.safetensors"), CheckpointError);
}

TEST(Captioner, ConfigRoundTripsThroughJson) {
  auto config = test_config(attention::AttentionMode::kHard);
  const auto back = CaptionerConfig::from_json(config.to_json());
  EXPECT_EQ(back.mode, attention::AttentionMode::kHard);
  EXPECT_EQ(back.vocab_size, config.vocab_size);
  EXPECT_EQ(back.encoder.dim, config.encoder.dim);
  EXPECT_THROW(CaptionerConfig::from_json("{\"vocab_size\": 3}"), std::invalid_argument);
  EXPECT_THROW(CaptionerConfig::from_json(R"({"encoder": {}, "vocab_size": 1e300})"),
               std::invalid_argument);
  // A hostile encoder config nested a million levels deep is refused, not printed back
  // recursively (dumping it overflowed the stack).
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_THROW(CaptionerConfig::from_json(R"({"vocab_size": 9, "encoder": {"dim": )" + deep + "}}"),
               std::invalid_argument);
}

}  // namespace
}  // namespace attnkit::vision
