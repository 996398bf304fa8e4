// tests/attention/transformer_modules_test.cpp: SelfAttention, FeedForward and AttentionPool
// against the formulas written out with plain tensor products, in training mode (LibTorch's ops)
// and at inference (the packed kernels where this build has them), with gradients.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "attention/attention_pool.h"
#include "attention/feed_forward.h"
#include "attention/self_attention.h"

namespace attnkit::attention {
namespace {

/// softmax(q k^T / sqrt(hd)) v per head, then proj, from the module's own weights.
/// x (B, N, D) -> output (B, N, D), weights (B, H, N, N).
std::pair<torch::Tensor, torch::Tensor> reference_self_attention(SelfAttention& m,
                                                                 const torch::Tensor& x) {
  const int64_t b = x.size(0), n = x.size(1), d = x.size(2), h = m->options.num_heads();
  const auto qkv = torch::matmul(x, m->qkv->weight.t()) + m->qkv->bias;       // (B, N, 3D)
  const auto split = qkv.view({b, n, 3, h, d / h}).permute({2, 0, 3, 1, 4});  // (3, B, H, N, hd)
  const auto q = split[0], k = split[1], v = split[2];
  const auto weights = torch::softmax(
      torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(d / h)), -1);
  const auto mixed = torch::matmul(weights, v).transpose(1, 2).reshape({b, n, d});
  return {torch::matmul(mixed, m->proj->weight.t()) + m->proj->bias, weights};
}

TEST(SelfAttention, EqualsTheWrittenOutFormulaInTrainingAndAtInference) {
  torch::manual_seed(0);
  SelfAttention attention(SelfAttentionOptions(24, 3));
  const auto x = torch::randn({2, 7, 24});
  torch::Tensor expected_output, expected_weights;
  {
    torch::NoGradGuard no_grad;
    std::tie(expected_output, expected_weights) = reference_self_attention(attention, x);
  }
  for (const bool training : {true, false}) {
    attention->train(training);
    torch::NoGradGuard no_grad;
    const auto out = attention->forward_with_weights(x);
    EXPECT_TRUE(torch::allclose(out.output, expected_output, 1e-4, 1e-5)) << training;
    EXPECT_TRUE(torch::allclose(out.weights, expected_weights, 1e-4, 1e-6)) << training;
    EXPECT_TRUE(torch::allclose(out.weights.sum(-1), torch::ones({2, 3, 7}), 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(attention(x), expected_output, 1e-4, 1e-5)) << training;
    const auto residual = torch::randn({2, 7, 24});
    const auto fused = attention->forward_residual(x, residual, /*keep_weights=*/true);
    EXPECT_TRUE(torch::allclose(fused.output, residual + expected_output, 1e-4, 1e-5));
    EXPECT_TRUE(torch::allclose(fused.weights, expected_weights, 1e-4, 1e-6));
  }
}

TEST(SelfAttention, GradientsReachTheInputTheWeightsAndTheAttention) {
  torch::manual_seed(1);
  SelfAttention attention(SelfAttentionOptions(16, 4));
  attention->eval();  // the inference path must still give gradients when they are asked for
  const auto x = torch::randn({1, 5, 16}, torch::requires_grad());
  const auto out = attention->forward_with_weights(x);
  const auto weight_grad = torch::autograd::grad({out.output.sum()}, {out.weights}, {},
                                                 /*retain_graph=*/true)[0];
  EXPECT_GT(weight_grad.abs().sum().item<double>(), 0.0);
  out.output.pow(2).sum().backward();
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(attention->qkv->weight.grad().abs().sum().item<double>(), 0.0);
  // The analytic gradient of one input entry against a central difference.
  torch::NoGradGuard no_grad;
  auto plus = x.detach().clone(), minus = x.detach().clone();
  plus[0][2][3] += 1e-2;
  minus[0][2][3] -= 1e-2;
  const double numeric =
      (attention(plus).pow(2).sum() - attention(minus).pow(2).sum()).item<double>() / 2e-2;
  EXPECT_NEAR(x.grad()[0][2][3].item<double>(), numeric, 1e-2 * std::max(1.0, std::abs(numeric)));
}

TEST(SelfAttention, QkNormNormalisesEachHeadsQueriesAndKeys) {
  torch::manual_seed(2);
  SelfAttention attention(SelfAttentionOptions(16, 2).qk_norm(true));
  ASSERT_TRUE(attention->q_norm && attention->k_norm);
  // Scaling the qkv weights of q and k does not change normalised scores: with qk_norm the
  // weights depend on the direction of q and k only (the biases are zeroed to keep it exact).
  torch::NoGradGuard no_grad;
  attention->qkv->bias.zero_();
  const auto x = torch::randn({1, 6, 16});
  const auto before = attention->forward_with_weights(x).weights;
  attention->qkv->weight.narrow(0, 0, 32).mul_(5.0);
  const auto after = attention->forward_with_weights(x).weights;
  EXPECT_TRUE(torch::allclose(before, after, 1e-4, 1e-5));
  EXPECT_THROW(SelfAttention(SelfAttentionOptions(10, 3)), c10::Error);
}

TEST(FeedForward, IsFc2OfExactGeluOfFc1) {
  torch::manual_seed(3);
  FeedForward mlp(FeedForwardOptions(12, 40));
  const auto x = torch::randn({3, 4, 12});
  torch::NoGradGuard no_grad;
  const auto hidden = torch::matmul(x, mlp->fc1->weight.t()) + mlp->fc1->bias;
  const auto gelu = 0.5 * hidden * (1 + torch::erf(hidden / std::sqrt(2.0)));  // not tanh's
  const auto expected = torch::matmul(gelu, mlp->fc2->weight.t()) + mlp->fc2->bias;
  for (const bool training : {true, false}) {
    mlp->train(training);
    EXPECT_TRUE(torch::allclose(mlp(x), expected, 1e-4, 1e-5)) << training;
    const auto residual = torch::randn({3, 4, 12});
    EXPECT_TRUE(
        torch::allclose(mlp->forward_residual(x, residual), residual + expected, 1e-4, 1e-5))
        << training;
  }
}

TEST(AttentionPool, PoolsWithTheLatentQueryThenProjectsAndAddsTheMlp) {
  torch::manual_seed(4);
  const int64_t d = 16, h = 4, hd = 4, n = 5;
  AttentionPool pool(AttentionPoolOptions(d, h).mlp_hidden_dim(32));
  EXPECT_EQ(pool->attention->options.score(), AttentionScore::kDotProduct);
  const auto tokens = torch::randn({2, n, d});
  torch::NoGradGuard no_grad;
  const auto out = pool->pool(tokens);
  for (int64_t b = 0; b < 2; ++b) {
    const auto q =
        (torch::mv(pool->attention->q->weight, pool->latent.view({d})) + pool->attention->q->bias)
            .view({h, hd});
    const auto kv =
        (torch::matmul(tokens[b], pool->attention->kv->weight.t()) + pool->attention->kv->bias)
            .view({n, 2, h, hd});
    std::vector<torch::Tensor> heads, weights;
    for (int64_t head = 0; head < h; ++head) {
      const auto k = kv.select(1, 0).select(1, head), v = kv.select(1, 1).select(1, head);
      const auto w = torch::softmax(torch::mv(k, q[head]) / std::sqrt(double(hd)), 0);
      weights.push_back(w);
      heads.push_back(torch::mv(v.t(), w));
    }
    const auto y = torch::mv(pool->proj->weight, torch::cat(heads)) + pool->proj->bias;
    const auto normed = torch::layer_norm(y, {d}, pool->norm->weight, pool->norm->bias, 1e-6);
    const auto expected = y + pool->mlp(normed.unsqueeze(0)).squeeze(0);
    EXPECT_TRUE(torch::allclose(out.context[b], expected, 1e-4, 1e-5)) << b;
    EXPECT_TRUE(torch::allclose(out.weights[b], torch::stack(weights).mean(0), 1e-5, 1e-6)) << b;
  }
  EXPECT_TRUE(torch::allclose(pool(tokens), out.context));
  EXPECT_THROW(pool->pool(torch::randn({2, n, d + 1})), c10::Error);
}

}  // namespace
}  // namespace attnkit::attention
