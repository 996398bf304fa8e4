// tests/attention/spatial_attention_test.cpp: invariants of the shared spatial attention module.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "attention/attention_pool.h"
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
  EXPECT_TRUE(torch::equal(sampled.head_weights.sum(2), torch::ones_like(sampled.head_weights.sum(2))));
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
  auto out = attention(features, torch::randn({2, 12}), mask);
  EXPECT_EQ(out.weights.index({0, torch::indexing::Slice(3)}).abs().sum().item<float>(), 0.0f);
  EXPECT_NEAR(out.weights[0].sum().item<float>(), 1.0f, 1e-5);
  // Padding values must not leak into the context.
  auto changed = features.clone();
  changed.index_put_({0, torch::indexing::Slice(3)}, 1000.0);
  auto again = attention(changed, torch::randn({2, 12}), mask);
  EXPECT_TRUE(torch::isfinite(again.context).all().item<bool>());
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
  EXPECT_THROW(SpatialAttention(SpatialAttentionOptions(10, 4)
                                    .score(AttentionScore::kDotProduct)
                                    .num_heads(3)),
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
    EXPECT_TRUE(torch::allclose(out.context[0].narrow(0, head * hd, hd), torch::mv(v.t(), w),
                                1e-5, 1e-6));
  }
}

TEST(AttentionPool, HoldsTheSharedSpatialAttentionModule) {
  AttentionPool pool(AttentionPoolOptions(16, 4));
  // The pool's scorer is the same class the captioner uses, in dot-product mode.
  EXPECT_TRUE(pool->attention.get() != nullptr);
  EXPECT_EQ(pool->attention->options.score(), AttentionScore::kDotProduct);
  auto tokens = torch::randn({3, 10, 16});
  auto out = pool->pool(tokens);
  EXPECT_EQ(out.context.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_TRUE(torch::allclose(out.weights.sum(1), torch::ones({3}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(pool(tokens), out.context));
}

}  // namespace
}  // namespace attnkit::attention
