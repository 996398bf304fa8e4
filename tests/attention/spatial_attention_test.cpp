// tests/attention/spatial_attention_test.cpp: invariants of the shared spatial attention module.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "attention/spatial_attention.h"

namespace attnkit::attention {
namespace {

class SpatialAttentionTest : public ::testing::TestWithParam<AttentionScore> {
 protected:
  void SetUp() override { torch::manual_seed(0); }
  SpatialAttention make(AttentionMode mode) {
    return SpatialAttention(SpatialAttentionOptions(16, 12)
                                .score(GetParam())
                                .mode(mode)
                                .num_heads(GetParam() == AttentionScore::kAdditive ? 1 : 4)
                                .hidden_dim(10));
  }
};

TEST_P(SpatialAttentionTest, SoftWeightsSumToOneAndContextIsTheirMix) {
  auto attention = make(AttentionMode::kSoft);
  auto features = torch::randn({3, 7, 16});
  auto query = torch::randn({3, 12});
  auto out = attention(features, query);
  ASSERT_EQ(out.weights.sizes(), (std::vector<int64_t>{3, 7}));
  ASSERT_EQ(out.context.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_TRUE(torch::allclose(out.weights.sum(1), torch::ones({3}), 1e-5, 1e-6));
  EXPECT_TRUE((out.weights >= 0).all().item<bool>());
  EXPECT_FALSE(out.log_prob.defined());
  if (GetParam() == AttentionScore::kAdditive) {
    // SAT eq. 6: the soft context is the expectation of the features under alpha.
    auto expected = (out.weights.unsqueeze(2) * features).sum(1);
    EXPECT_TRUE(torch::allclose(out.context, expected, 1e-5, 1e-6));
  }
}

TEST_P(SpatialAttentionTest, HardIsOneHotPerHeadAndLogProbMatchesSoftWeights) {
  auto hard = make(AttentionMode::kHard);
  auto features = torch::randn({5, 9, 16});
  auto query = torch::randn({5, 12});
  hard->train();
  auto sampled = hard(features, query);
  ASSERT_TRUE(sampled.log_prob.defined());
  ASSERT_EQ(sampled.log_prob.sizes(), (std::vector<int64_t>{5}));
  // Each head's weights are one-hot.
  EXPECT_TRUE(
      torch::equal(sampled.head_weights.sum(2), torch::ones_like(sampled.head_weights.sum(2))));
  EXPECT_TRUE(((sampled.head_weights == 0) | (sampled.head_weights == 1)).all().item<bool>());
  // log p equals the log of the soft weight of the sampled cell (summed over heads).
  auto soft = make(AttentionMode::kSoft);
  {
    torch::NoGradGuard no_grad;
    auto source = hard->named_parameters();
    for (auto& item : soft->named_parameters()) item.value().copy_(source[item.key()]);
  }
  auto alpha = soft(features, query).head_weights;
  auto expected = (alpha * sampled.head_weights).sum(2).log().sum(1);
  EXPECT_TRUE(torch::allclose(sampled.log_prob, expected, 1e-5, 1e-5));
  // At inference hard attention picks the argmax.
  hard->eval();
  auto chosen = hard(features, query).head_weights.argmax(2);
  EXPECT_TRUE(torch::equal(chosen, alpha.argmax(2)));
}

TEST_P(SpatialAttentionTest, MaskedCellsGetNoWeight) {
  auto attention = make(AttentionMode::kSoft);
  auto features = torch::randn({2, 6, 16});
  auto mask = torch::ones({2, 6}, torch::kBool);
  mask.index_put_({0, torch::indexing::Slice(3)}, false);
  const auto query = torch::randn({2, 12});
  auto out = attention(features, query, mask);
  EXPECT_EQ(out.weights.index({0, torch::indexing::Slice(3)}).abs().sum().item<float>(), 0.0f);
  EXPECT_NEAR(out.weights[0].sum().item<float>(), 1.0f, 1e-5);
  // Padding values must not leak into the context: changing them changes nothing for image 0.
  auto changed = features.clone();
  changed.index_put_({0, torch::indexing::Slice(3)}, 1000.0);
  auto again = attention(changed, query, mask);
  EXPECT_TRUE(torch::allclose(again.context[0], out.context[0], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(again.weights[0], out.weights[0], 1e-5, 1e-7));
}

TEST_P(SpatialAttentionTest, GradientFlowsInSoftMode) {
  auto attention = make(AttentionMode::kSoft);
  auto features = torch::randn({2, 5, 16}, torch::requires_grad());
  auto query = torch::randn({2, 12}, torch::requires_grad());
  attention(features, query).context.sum().backward();
  EXPECT_GT(features.grad().abs().sum().item<float>(), 0.0f);
  EXPECT_GT(query.grad().abs().sum().item<float>(), 0.0f);
  for (const auto& p : attention->parameters()) {
    ASSERT_TRUE(p.grad().defined());
  }
}

TEST_P(SpatialAttentionTest, PreparedMemoryGivesTheSameResult) {
  auto attention = make(AttentionMode::kSoft);
  auto features = torch::randn({2, 5, 16});
  auto query = torch::randn({2, 12});
  auto memory = attention->prepare(features);
  EXPECT_TRUE(torch::allclose(attention->attend(memory, query).context,
                              attention(features, query).context));
}

TEST_P(SpatialAttentionTest, GroupedQueriesEqualRepeatedMemoryInEveryMode) {
  // Beam search asks g hypotheses per image of one copy of its features; that must give what
  // g copies of the features give, in training (LibTorch's ops) and at inference (the additive
  // scores then run in the fused per-item kernel).
  const int64_t batch = 3, group = 4;
  auto features = torch::randn({batch, 9, 16});
  auto mask = torch::ones({batch, 9}, torch::kBool);
  mask[1][8] = false;
  auto query = torch::randn({batch * group, 12});
  for (auto mode : {AttentionMode::kSoft, AttentionMode::kHard}) {
    auto attention = make(mode);
    for (bool training : {true, false}) {
      if (training && mode == AttentionMode::kHard) continue;  // sampled: not comparable
      attention->train(training);
      torch::NoGradGuard no_grad;
      auto repeated = attention->attend(attention->prepare(features.repeat_interleave(group, 0),
                                                           mask.repeat_interleave(group, 0)),
                                        query);
      auto memory = attention->prepare(features, mask);
      memory.queries_per_item = group;
      auto grouped = attention->attend(memory, query);
      const std::string label = std::string(training ? "training" : "inference") +
                                (mode == AttentionMode::kHard ? ", hard" : ", soft");
      ASSERT_EQ(grouped.weights.sizes(), repeated.weights.sizes()) << label;
      EXPECT_TRUE(torch::allclose(grouped.weights, repeated.weights, 1e-5, 1e-6)) << label;
      EXPECT_TRUE(torch::allclose(grouped.probabilities, repeated.probabilities, 1e-5, 1e-6))
          << label;
      EXPECT_TRUE(torch::allclose(grouped.context, repeated.context, 1e-5, 1e-6)) << label;
      EXPECT_EQ(grouped.weights.select(0, 1 * group + 2)[8].item<float>(), 0.0f) << label;
    }
  }
  auto attention = make(AttentionMode::kSoft);
  auto memory = attention->prepare(features);
  memory.queries_per_item = group;
  EXPECT_THROW(attention->attend(memory, torch::randn({batch, 12})), c10::Error);
}

TEST(AdditiveScores, FusedInferenceKernelMatchesTheTanhMlp) {
  torch::manual_seed(4);
  SpatialAttention attention(SpatialAttentionOptions(32, 20).hidden_dim(128));
  // Large pre-activations too, where tanh saturates.
  auto features = torch::randn({5, 256, 32}) * 3;
  auto query = torch::randn({5, 20}) * 3;
  attention->train();
  torch::NoGradGuard no_grad;
  const auto reference = attention(features, query);
  attention->eval();
  const auto fused = attention(features, query);
  EXPECT_TRUE(torch::allclose(fused.weights, reference.weights, 1e-4, 1e-6))
      << (fused.weights - reference.weights).abs().max();
  EXPECT_TRUE(torch::allclose(fused.context, reference.context, 1e-4, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(Scores, SpatialAttentionTest,
                         ::testing::Values(AttentionScore::kAdditive, AttentionScore::kDotProduct),
                         [](const auto& info) {
                           return info.param == AttentionScore::kAdditive ? "Additive"
                                                                          : "DotProduct";
                         });

TEST(SpatialAttention, RejectsBadShapesWithExpectedAndActual) {
  SpatialAttention attention(SpatialAttentionOptions(8, 4));
  try {
    attention(torch::randn({2, 5, 7}), torch::randn({2, 4}));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected features (B, L, 8), got [2, 5, 7]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(SpatialAttention(
                   SpatialAttentionOptions(10, 4).score(AttentionScore::kDotProduct).num_heads(3)),
               c10::Error);
  auto mask = torch::zeros({2, 5}, torch::kBool);
  EXPECT_THROW(attention(torch::randn({2, 5, 8}), torch::randn({2, 4}), mask), c10::Error);
}

TEST(SpatialAttention, DotProductMatchesHandComputedMultiHeadAttention) {
  torch::manual_seed(1);
  const int64_t d = 8, h = 2, hd = 4;
  SpatialAttention attention(
      SpatialAttentionOptions(d, d).score(AttentionScore::kDotProduct).num_heads(h));
  auto f = torch::randn({1, 3, d});
  auto q = torch::randn({1, d});
  auto out = attention(f, q);
  auto qh = attention->q(q).view({h, hd});
  auto kv = attention->kv(f).view({3, 2, h, hd});
  for (int64_t head = 0; head < h; ++head) {
    auto k = kv.select(1, 0).select(1, head);  // (3, hd)
    auto v = kv.select(1, 1).select(1, head);
    auto w = torch::softmax(torch::mv(k, qh[head]) / std::sqrt(4.0), 0);
    EXPECT_TRUE(torch::allclose(out.head_weights[0][head], w, 1e-5, 1e-6));
    EXPECT_TRUE(
        torch::allclose(out.context[0].narrow(0, head * hd, hd), torch::mv(v.t(), w), 1e-5, 1e-6));
  }
}

}  // namespace
}  // namespace attnkit::attention
