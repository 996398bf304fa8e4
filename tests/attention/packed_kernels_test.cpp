// tests/attention/packed_kernels_test.cpp: the oneDNN packed products and attention core agree
// with LibTorch's unfused ops, follow weight changes, and the layers that use them stay exact.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "attention/feed_forward.h"
#include "attention/linear.h"
#include "attention/packed_attention.h"
#include "attention/packed_linear.h"
#include "attention/self_attention.h"

namespace attnkit::attention {
namespace {

double relative_error(const torch::Tensor& a, const torch::Tensor& reference) {
  return ((a.to(torch::kFloat) - reference).norm() / reference.norm()).item<double>();
}

class PackedKernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!packed_linear_available()) GTEST_SKIP() << "built without oneDNN (libdnnl-dev)";
    torch::manual_seed(5);
  }
};

TEST_F(PackedKernelsTest, EveryEpilogueMatchesLibTorchAtEveryRowCount) {
  torch::NoGradGuard no_grad;
  auto weight = torch::randn({96, 64}) * 0.1;
  auto bias = torch::randn({96});
  for (bool with_bias : {true, false}) {
    const auto b = with_bias ? bias : torch::Tensor();
    PackedLinear fp32(weight, b, torch::kFloat);
    // Below AVX-512 (or with ONEDNN_MAX_CPU_ISA=AVX2) oneDNN 2.6 has no bf16 matmul: bf16 is
    // emulated on the fp32 kernels, with the same rounding.
    PackedLinear bf16(weight, b, torch::kBFloat16);
    EXPECT_EQ(bf16.emulates_bf16(), !onednn_native_matmul(torch::kBFloat16));
    for (int64_t rows : {1, 7, 197, 1000}) {
      const auto x = torch::randn({rows, 64});
      const auto residual = torch::randn({rows, 96});
      const auto y = torch::nn::functional::linear(x, weight, b);
      const std::pair<LinearEpilogue, torch::Tensor> cases[] = {
          {LinearEpilogue::kNone, y},
          {LinearEpilogue::kGelu, torch::gelu(y)},
          {LinearEpilogue::kAddResidual, residual + y}};
      for (const auto& [epilogue, expected] : cases) {
        const auto label = "rows " + std::to_string(rows) + ", epilogue " +
                           std::to_string(static_cast<int>(epilogue)) + ", bias " +
                           std::to_string(with_bias);
        auto got = fp32.run(x, epilogue, torch::kFloat, residual);
        ASSERT_EQ(got.sizes(), expected.sizes()) << label;
        EXPECT_LT(relative_error(got, expected), 1e-5) << label;
        // bf16 rounds x, W and (for a bf16 output) y to 8 significant bits.
        for (auto out : {torch::kFloat, torch::kBFloat16}) {
          auto rounded = bf16.run(x, epilogue, out, residual.to(out));
          EXPECT_EQ(rounded.scalar_type(), out) << label;
          const double error = relative_error(rounded, expected);
          EXPECT_LT(error, 2e-2) << label;
          EXPECT_GT(error, 0.0) << label << ": the bf16 kernel ran in fp32";
        }
      }
    }
  }
}

TEST_F(PackedKernelsTest, KeepsLeadingDimensionsAndChecksShapes) {
  PackedLinear packed(torch::randn({8, 4}), torch::randn({8}), torch::kFloat);
  EXPECT_EQ(packed.run(torch::randn({2, 3, 4}), LinearEpilogue::kNone, torch::kFloat).sizes(),
            (std::vector<int64_t>{2, 3, 8}));
  EXPECT_EQ(packed.run(torch::randn({0, 4}), LinearEpilogue::kNone, torch::kFloat).size(0), 0);
  EXPECT_THROW(packed.run(torch::randn({2, 5}), LinearEpilogue::kNone, torch::kFloat), c10::Error);
  EXPECT_THROW(packed.run(torch::randn({2, 4}), LinearEpilogue::kAddResidual, torch::kFloat,
                          torch::randn({3, 8})),
               c10::Error);
  EXPECT_FALSE(packed.kernel_name(16).empty());
}

TEST_F(PackedKernelsTest, LinearRepacksWhenItsWeightsChange) {
  Linear layer(32, 16);
  layer->eval();
  const auto x = torch::randn({5, 32});
  torch::NoGradGuard no_grad;
  ASSERT_TRUE(layer->runs_packed(x));
  const auto before = layer(x);
  EXPECT_LT(relative_error(before, torch::nn::functional::linear(x, layer->weight, layer->bias)),
            1e-5);
  // An optimiser step or a state-dict load changes the parameters in place.
  layer->weight.mul_(2);
  layer->bias.zero_();
  const auto after = layer(x);
  EXPECT_LT(relative_error(after, torch::nn::functional::linear(x, layer->weight, layer->bias)),
            1e-5);
  EXPECT_GT(relative_error(after, before), 0.1);
}

TEST_F(PackedKernelsTest, AttentionCoreMatchesSoftmaxOfScaledScores) {
  torch::NoGradGuard no_grad;
  const int64_t batch = 2, tokens = 197, heads = 3, head_dim = 16;
  auto qkv = torch::randn({batch, tokens, 3 * heads * head_dim});
  auto split = qkv.view({batch, tokens, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  const double scale = 0.25;
  auto weights = torch::softmax(torch::matmul(split[0] * scale, split[1].transpose(-2, -1)), -1);
  auto expected = torch::matmul(weights, split[2]).transpose(1, 2).reshape({batch, tokens, -1});

  auto fp32 = packed_attention(qkv, heads, scale, /*keep_weights=*/true);
  EXPECT_LT(relative_error(fp32.output, expected), 1e-5);
  EXPECT_LT(relative_error(fp32.weights, weights), 1e-5);
  EXPECT_TRUE(torch::allclose(fp32.weights.sum(-1), torch::ones({batch, heads, tokens}), 1e-5));
  EXPECT_FALSE(packed_attention(qkv, heads, scale, false).weights.defined());

  EXPECT_THROW(packed_attention(torch::randn({2, 5, 10}), heads, scale, false), c10::Error);
  auto bf16 = packed_attention(qkv.to(torch::kBFloat16), heads, scale, true);
  EXPECT_EQ(bf16.output.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(bf16.weights.scalar_type(), torch::kFloat);
  EXPECT_LT(relative_error(bf16.output, expected), 3e-2);
  EXPECT_GT(relative_error(bf16.output, expected), 0.0);
}

TEST_F(PackedKernelsTest, FusedResidualBranchesEqualTheUnfusedOnes) {
  SelfAttention attention(SelfAttentionOptions(48, 4));
  FeedForward mlp(FeedForwardOptions(48, 96));
  const auto x = torch::randn({2, 10, 48});
  const auto residual = torch::randn({2, 10, 48});
  torch::NoGradGuard no_grad;
  // Training mode runs LibTorch's ops (the reference: no dropout is configured); eval mode runs
  // packed where oneDNN is present.
  attention->train();
  mlp->train();
  const auto attention_reference = residual + attention(x);
  const auto mlp_reference = residual + mlp(x);
  for (bool training : {true, false}) {
    attention->train(training);
    mlp->train(training);
    auto fused = attention->forward_residual(x, residual, /*keep_weights=*/true);
    EXPECT_LT(relative_error(fused.output, attention_reference), 1e-5) << training;
    ASSERT_TRUE(fused.weights.defined());
    EXPECT_EQ(fused.weights.sizes(), (std::vector<int64_t>{2, 4, 10, 10}));
    EXPECT_LT(relative_error(mlp->forward_residual(x, residual), mlp_reference), 1e-5) << training;
  }
}

}  // namespace
}  // namespace attnkit::attention
