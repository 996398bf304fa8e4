// tests/vision/models/inference_precision_test.cpp: bf16 and int8 inference: the choice per CPU,
// the Linear layer's reduced paths against fp32, and the shipped Fashion-MNIST model's agreement.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "attention/linear.h"
#include "vision/checkpoint/model_file.h"
#include "vision/data/fashion_mnist.h"
#include "vision/image/preprocess.h"
#include "vision/models/inference_precision.h"
#include "vision/models/precision_agreement.h"
#include "vision/models/vit.h"

namespace attnkit::vision {
namespace {

using attention::LinearPrecision;

double relative_error(const torch::Tensor& a, const torch::Tensor& reference) {
  return ((a - reference).norm() / reference.norm()).item<double>();
}

TEST(InferencePrecisionChoice, AutoFollowsTheCpu) {
  const auto amx = choose_inference_precision(
      "auto", parse_cpu_flags("avx2 fma avx512f avx512_bf16 avx512_vnni amx_tile amx_bf16"));
  EXPECT_EQ(amx.name(), "bf16");
  EXPECT_EQ(amx.reason, "auto: AMX-BF16");
  EXPECT_TRUE(amx.warning.empty());

  const auto zen3 = choose_inference_precision("auto", parse_cpu_flags("avx2 fma"));
  EXPECT_EQ(zen3.name(), "int8");
  EXPECT_TRUE(zen3.int8_reduce_range) << "no VNNI: 7-bit activations";
  EXPECT_FALSE(
      choose_inference_precision("auto", parse_cpu_flags("avx2 fma avx_vnni")).int8_reduce_range);

  EXPECT_EQ(choose_inference_precision("auto", parse_cpu_flags("sse4_2")).name(), "fp32");
}

TEST(InferencePrecisionChoice, ExplicitChoicesWarnWhereSlowAndBadNamesThrow) {
  const auto avx2 = parse_cpu_flags("avx2 fma");
  EXPECT_EQ(choose_inference_precision("fp32", avx2).name(), "fp32");
  const auto bf16 = choose_inference_precision("bf16", avx2);
  EXPECT_EQ(bf16.name(), "bf16");
  EXPECT_NE(bf16.warning.find("no native bf16"), std::string::npos) << bf16.warning;
  EXPECT_TRUE(choose_inference_precision("int8", avx2).warning.empty());
  EXPECT_FALSE(choose_inference_precision("int8", parse_cpu_flags("sse4_2")).warning.empty());
  try {
    choose_inference_precision("fp16", avx2);
    FAIL() << "fp16 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("fp32, bf16, int8 or auto, got 'fp16'"), std::string::npos)
        << e.what();
  }
}

class LinearPrecisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(3);
    layer->eval();
    apply_inference_precision(*layer, choose_inference_precision("int8", cpu_features()));
    apply_inference_precision(*layer, InferencePrecision{});
    x = torch::randn({2, 50, 192});
    torch::NoGradGuard no_grad;
    exact = layer(x);
  }
  attention::Linear layer{192, 384};
  torch::Tensor x, exact;
};

TEST_F(LinearPrecisionTest, ReducedPathsFollowFp32WithinTheirRounding) {
  torch::NoGradGuard no_grad;
  // bf16 keeps 8 significant bits (inputs, weights and the result each round by <= 2^-9); int8
  // keeps 7 bits of each weight row and 8 of the activations.
  const std::pair<LinearPrecision, double> bounds[] = {{LinearPrecision::kBf16, 1e-2},
                                                       {LinearPrecision::kInt8, 3e-2}};
  // 7-bit activations where the CPU has no VNNI, as attn chooses: without them, AVX2's 16-bit
  // u8 x s8 sums saturate (an 8% error here).
  const bool reduce_range = choose_inference_precision("int8", cpu_features()).int8_reduce_range;
  for (const auto& [precision, bound] : bounds) {
    const std::string name = attention::linear_precision_name(precision);
    layer->set_precision(precision, reduce_range);
    auto y = layer(x);
    EXPECT_EQ(y.scalar_type(), torch::kFloat) << name;
    ASSERT_EQ(y.sizes(), exact.sizes()) << name;
    const double error = relative_error(y, exact);
    EXPECT_LT(error, bound) << name;
    EXPECT_GT(error, 0.0) << "the " << name << " path ran in fp32";
  }
  layer->set_precision(LinearPrecision::kFp32);
  EXPECT_TRUE(torch::equal(layer(x), exact));
}

TEST_F(LinearPrecisionTest, ParametersTrainingAndGradientsStayExact) {
  const auto weight_before = layer->weight.clone();
  layer->set_precision(LinearPrecision::kInt8);
  // The copies are not parameters or buffers: saving and loading see the fp32 weights only.
  EXPECT_EQ(layer->parameters().size(), 2u);
  EXPECT_TRUE(layer->buffers().empty());
  EXPECT_TRUE(torch::equal(layer->weight, weight_before));
  EXPECT_EQ(layer->weight.scalar_type(), torch::kFloat);

  // LibTorch's own linear (BLAS) there, oneDNN in exact: the same fp32 sums in another order.
  layer->train();
  EXPECT_TRUE(torch::allclose(layer(x), exact, 1e-4, 1e-5)) << "training must use fp32 weights";
  layer->eval();

  // A gradient through an int8 layer (grad-rollout) takes the exact path and flows.
  auto input = x.clone().requires_grad_(true);
  auto y = layer(input);
  EXPECT_TRUE(torch::allclose(y, exact, 1e-4, 1e-5));
  y.sum().backward();
  ASSERT_TRUE(input.grad().defined());
  EXPECT_GT(input.grad().abs().sum().item<double>(), 0.0);

  // So does bf16: a pass that needs gradients runs exact.
  layer->set_precision(LinearPrecision::kBf16);
  auto input2 = x.clone().requires_grad_(true);
  layer(input2).sum().backward();
  ASSERT_TRUE(input2.grad().defined());
  EXPECT_LT(relative_error(input2.grad(), input.grad()), 1e-2);
}

TEST(InferencePrecisionModel, OnlyTheTransformerLinearsChange) {
  auto config = ViTConfig::from_name("vit_tiny_patch16_224");
  config.depth = 2;
  torch::manual_seed(0);
  VisionTransformer model(config);
  model->eval();
  // qkv, proj, fc1, fc2 per block; the head stays a plain torch::nn::Linear.
  EXPECT_EQ(attention::set_linear_precision(*model, LinearPrecision::kBf16), 8);
  auto images = torch::randn({3, 3, 224, 224});
  torch::NoGradGuard no_grad;
  auto bf16 = model->forward(images);
  attention::set_linear_precision(*model, LinearPrecision::kFp32);
  auto fp32 = model->forward(images);
  EXPECT_LT(relative_error(bf16, fp32), 2e-2);
  EXPECT_GT(relative_error(bf16, fp32), 0.0);
}

// The shipped classifier on the first 1,000 Fashion-MNIST test images: each reduced precision
// picks fp32's class for >= 99% of them, and its rollout maps look like fp32's. On a CPU without
// VNNI, int8 runs with 7-bit activations, as it would for a user there.
TEST(InferencePrecisionModel, ShippedFashionModelAgreesWithFp32) {
  const std::string weights = std::string(ATTNKIT_SOURCE_DIR) + "/weights/fashion-vit.safetensors";
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  auto loaded = load_vit(weights);
  auto data = load_fashion_mnist(kFashionMnistDir, "test");
  for (const std::string name : {"bf16", "int8"}) {
    // Emulated bf16 (no AVX512-BF16 / AMX) is many times slower: fewer images there.
    const int64_t count = name == "bf16" && !cpu_features().native_bf16() ? 200 : 1000;
    auto images = normalize_pixels(data.images.narrow(0, 0, count), loaded.info.preprocess);
    const auto precision = choose_inference_precision(name, cpu_features());
    const auto a = measure_precision_agreement(loaded.model, images, precision, 250,
                                               /*rollout=*/true);
    EXPECT_EQ(a.count, count);
    EXPECT_GE(a.top1_agreement, 0.99) << name;
    EXPECT_LT(a.max_logit_difference, 0.1 * a.logit_range) << name;
    EXPECT_GT(a.mean_rollout_correlation, 0.98) << name;
    // A class changes only where fp32's top two are closer than twice the logit error.
    EXPECT_GT(a.median_top1_margin, 0.0) << name;
    EXPECT_LE(a.max_flipped_margin, 2 * a.max_logit_difference) << name;
    std::cout << name << ": top-1 agreement " << a.top1_agreement << ", max |dlogit| "
              << a.max_logit_difference << " (fp32 logits span " << a.logit_range
              << "), rollout correlation mean " << a.mean_rollout_correlation << " min "
              << a.min_rollout_correlation << "\n";
  }
}

}  // namespace
}  // namespace attnkit::vision
