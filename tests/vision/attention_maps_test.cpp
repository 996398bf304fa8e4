// tests/vision/attention_maps_test.cpp: class-token maps, rollout and gradient rollout against
// torchvision with hooked attention (tests/oracle/attention_maps_reference.py), non-square grids
// and extra tokens, and gradient rollout finding the evidence on a planted task.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "attention/attention_maps.h"
#include "tests/vision/test_support.h"
#include "vision/checkpoint/import.h"
#include "vision/checkpoint/model_file.h"
#include "vision/models/vit_explain.h"

namespace attnkit::vision {
namespace {

const std::string kOracleDir = std::string(ATTNKIT_TEST_DATA_DIR) + "/attention_maps_oracle";

struct OracleMap {
  const char* name;
  ExplainOptions options;
};

std::vector<OracleMap> oracle_maps() {
  using attention::HeadFusion;
  std::vector<OracleMap> maps;
  auto add = [&](const char* name, MapMethod method, HeadFusion fusion, int64_t head,
                 double discard) {
    ExplainOptions o;
    o.method = method;
    o.fusion = fusion;
    o.head = head;
    o.discard_ratio = discard;
    maps.push_back({name, o});
  };
  add("cls_mean", MapMethod::kClassToken, HeadFusion::kMean, -1, 0);
  add("cls_max", MapMethod::kClassToken, HeadFusion::kMax, -1, 0);
  add("cls_min", MapMethod::kClassToken, HeadFusion::kMin, -1, 0);
  add("cls_head2", MapMethod::kClassToken, HeadFusion::kMean, 2, 0);
  add("rollout_mean_0.0", MapMethod::kRollout, HeadFusion::kMean, -1, 0);
  add("rollout_mean_0.5", MapMethod::kRollout, HeadFusion::kMean, -1, 0.5);
  add("rollout_max_0.0", MapMethod::kRollout, HeadFusion::kMax, -1, 0);
  add("rollout_max_0.5", MapMethod::kRollout, HeadFusion::kMax, -1, 0.5);
  add("grad_rollout", MapMethod::kGradRollout, HeadFusion::kMean, -1, 0);
  return maps;
}

TEST(AttentionMapsOracle, EqualTorchvisionWithHookedAttentionOnSquareAndNonSquareGrids) {
  ASSERT_EQ(attnkit::testing::run_oracle("attention_maps_reference.py --out " + kOracleDir,
                                         kOracleDir + "/manifest.json"),
            "");
  std::ifstream manifest_file(kOracleDir + "/manifest.json");
  const auto manifest = nlohmann::json::parse(manifest_file);
  ImportOptions import_options;
  import_options.num_heads = manifest["config"]["num_heads"].get<int64_t>();
  auto imported = import_torchvision(kOracleDir + "/torchvision.safetensors", import_options);
  VisionTransformer model(imported.config);
  load_tensors_strict(*model, imported.tensors, kOracleDir);
  int64_t compared = 0;
  for (const auto& c : manifest["cases"]) {
    const std::string tag = c["tag"];
    const auto grid = c["grid"].get<std::vector<int64_t>>();
    const auto input = attnkit::testing::read_raw_f32(
        kOracleDir + "/" + tag + "_input.f32", c["input_shape"].get<std::vector<int64_t>>());
    for (auto map : oracle_maps()) {
      map.options.target_class = c["target_class"].get<int64_t>();
      const auto expected = attnkit::testing::read_raw_f32(
          kOracleDir + "/" + tag + "_" + map.name + ".f32", {input.size(0), grid[0], grid[1]});
      const auto explained = explain_vit(model, input, map.options);
      ASSERT_EQ(explained.maps.sizes(), (torch::IntArrayRef{input.size(0), 1, grid[0], grid[1]}))
          << tag << " " << map.name;
      const double error = (explained.maps.squeeze(1) - expected).abs().max().item<double>();
      std::cout << "[oracle] " << tag << " " << map.name << ": max abs error " << error
                << std::endl;
      EXPECT_LE(error, 1e-5) << tag << " " << map.name;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 18);
}

// Register and distillation tokens take no part: the maps equal those of the same attention with
// their rows and columns removed and rows renormalised.
TEST(AttentionMaps, ExtraPrefixTokensAreLeftOut) {
  torch::manual_seed(0);
  const int64_t gh = 2, gw = 3, prefix = 3;  // class, distillation, one register
  const int64_t n = prefix + gh * gw;
  std::vector<torch::Tensor> with_extra, without_extra;
  for (int layer = 0; layer < 2; ++layer) {
    const auto a = torch::softmax(torch::randn({2, 4, n, n}), -1);
    with_extra.push_back(a);
    auto keep = torch::cat({torch::tensor({0}, torch::kLong), torch::arange(prefix, n)});
    auto kept = a.index_select(2, keep).index_select(3, keep);
    without_extra.push_back(kept / kept.sum(-1, true));
  }
  attention::TokenLayout extra{0, prefix, gh, gw}, plain{0, 1, gh, gw};
  for (auto fusion : {attention::HeadFusion::kMean, attention::HeadFusion::kMax}) {
    EXPECT_TRUE(torch::allclose(attention::attention_rollout(with_extra, extra, fusion),
                                attention::attention_rollout(without_extra, plain, fusion)));
    EXPECT_TRUE(torch::allclose(attention::class_token_map(with_extra[1], extra, fusion),
                                attention::class_token_map(without_extra[1], plain, fusion)));
  }
  const auto rolled = attention::attention_rollout(with_extra, extra, attention::HeadFusion::kMean);
  EXPECT_EQ(rolled.sizes(), (torch::IntArrayRef{2, gh, gw}));
}

// Without a class token (mean pooling) the readout averages the patch rows; rollout of a
// uniform attention is uniform.
TEST(AttentionMaps, MeanPooledModelsReadTheAverageRow) {
  const int64_t cells = 6;
  const auto uniform = torch::full({1, 2, cells, cells}, 1.0 / cells);
  attention::TokenLayout layout{-1, 0, 2, 3};
  const auto map = attention::attention_rollout({uniform, uniform}, layout,
                                                attention::HeadFusion::kMean);
  EXPECT_TRUE(torch::allclose(map, torch::full({1, 2, 3}, 1.0 / cells)));
  auto peaked = torch::zeros({1, 1, cells, cells});
  peaked.select(3, 4).fill_(1.0);  // every patch attends to patch 4
  const auto cls = attention::class_token_map(peaked, layout, attention::HeadFusion::kMean);
  EXPECT_EQ(cls.reshape({-1}).argmax().item<int64_t>(), 4);
}

// A class token that the head never reads (average pooling) is kept in the attention but the
// maps read the patch rows, as the pooled feature does; explaining leaves the model's mode alone.
TEST(AttentionMaps, AveragePooledModelsWithAClassTokenReadThePatchRows) {
  torch::manual_seed(0);
  auto config = attnkit::testing::tiny_vit_config(16, 24, 3);
  config.pooling = Pooling::kAvg;
  VisionTransformer model(config);
  const auto layout = token_layout(config, 2, 3);
  EXPECT_EQ(layout.class_index, 0);
  EXPECT_TRUE(layout.mean_readout);
  const auto a = torch::softmax(torch::randn({1, 2, 7, 7}), -1);
  const auto map = attention::class_token_map(a, layout, attention::HeadFusion::kMean);
  const auto expected = a.mean(1).narrow(1, 1, 6).narrow(2, 1, 6).mean(1).reshape({1, 2, 3});
  EXPECT_TRUE(torch::allclose(map, expected));

  model->train();
  ExplainOptions options;
  options.method = MapMethod::kGradRollout;
  explain_vit(model, torch::randn({2, 3, 16, 24}), options);
  EXPECT_TRUE(model->is_training());
}

// A planted task: class 1 images hold one bright patch at a random cell, class 0 images are
// noise only. After training, gradient rollout for class 1 peaks at the bright patch's cell.
TEST(AttentionMaps, GradientRolloutPointsAtThePlantedCell) {
  torch::manual_seed(0);
  auto config = attnkit::testing::tiny_vit_config(16, 16, 2);
  config.patch_size = 4;
  config.dim = 32;
  config.num_heads = 2;
  config.mlp_hidden_dim = 64;
  VisionTransformer model(config);
  auto make_batch = [](int64_t n, torch::Tensor* cells) {
    auto images = 0.1 * torch::randn({n, 3, 16, 16});
    auto labels = torch::randint(0, 2, {n}, torch::kLong);
    *cells = torch::randint(0, 16, {n}, torch::kLong);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t cell = (*cells)[i].item<int64_t>();
      if (labels[i].item<int64_t>() == 0) continue;
      images[i].narrow(1, cell / 4 * 4, 4).narrow(2, cell % 4 * 4, 4).add_(2.0);
    }
    return std::make_pair(images, labels);
  };
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(3e-3));
  model->train();
  torch::Tensor cells;
  for (int step = 0; step < 300; ++step) {
    auto [images, labels] = make_batch(64, &cells);
    auto loss = torch::nn::functional::cross_entropy(model->forward(images), labels);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  auto [images, labels] = make_batch(200, &cells);
  ExplainOptions options;
  options.method = MapMethod::kGradRollout;
  options.target_class = 1;
  const auto explained = explain_vit(model, images, options);
  const auto positives = labels.eq(1);
  const auto accuracy =
      explained.probabilities.argmax(1).eq(labels).to(torch::kFloat).mean().item<double>();
  ASSERT_GT(accuracy, 0.95) << "the planted task was not learned";
  const auto peaks = explained.maps.reshape({200, -1}).argmax(1);
  const double pointing = peaks.eq(cells).masked_select(positives).to(torch::kFloat).mean()
                              .item<double>();
  std::cout << "[planted] accuracy " << accuracy << ", grad-rollout at the planted cell "
            << pointing << std::endl;
  EXPECT_GT(pointing, 0.9);
}

TEST(AttentionMaps, ClsMapsPerHeadAndPerLayerAndClearErrors) {
  torch::manual_seed(0);
  auto config = attnkit::testing::tiny_vit_config(16, 24, 3);
  config.depth = 3;
  VisionTransformer model(config);
  const auto images = torch::randn({2, 3, 16, 24});
  ExplainOptions options;
  options.method = MapMethod::kClassToken;
  options.head = ExplainOptions::kAll;
  auto heads = explain_vit(model, images, options);
  EXPECT_EQ(heads.maps.sizes(), (torch::IntArrayRef{2, config.num_heads, 2, 3}));
  EXPECT_EQ(heads.map_titles.size(), static_cast<size_t>(config.num_heads));
  options.head = -1;
  options.layer = ExplainOptions::kAll;
  auto layers = explain_vit(model, images, options);
  EXPECT_EQ(layers.maps.sizes(), (torch::IntArrayRef{2, 3, 2, 3}));
  EXPECT_EQ(layers.map_titles.at(2), "layer 2");
  // The last layer's fused map is the same whether asked as -1 or as layer 2.
  options.layer = -1;
  EXPECT_TRUE(torch::allclose(explain_vit(model, images, options).maps.squeeze(1),
                              layers.maps.select(1, 2)));
  options.layer = 3;
  EXPECT_THROW(explain_vit(model, images, options), std::invalid_argument);
  options.layer = -1;
  options.method = MapMethod::kPool;
  EXPECT_THROW(explain_vit(model, images, options), std::invalid_argument);
  EXPECT_THROW(map_method_from_string("gradcam"), std::invalid_argument);
  EXPECT_THROW(attention::head_fusion_from_string("median"), std::invalid_argument);
}

// The pool map is the map head's weights over the patches. Without a class token they are all
// the pool sees; with one, timm's head reads the patches only unless pool_include_prefix, and
// then the class token's share is left out of the map (which sums below 1).
TEST(AttentionMaps, PoolMapIsTheMapHeadsWeights) {
  struct Case {
    bool class_token;
    bool include_prefix;
  };
  for (const Case c : {Case{false, false}, Case{true, false}, Case{true, true}}) {
    torch::manual_seed(0);
    auto config = attnkit::testing::tiny_vit_config(16, 24, 3);
    config.class_token = c.class_token;
    config.pooling = Pooling::kMap;
    config.pool_include_prefix = c.include_prefix;
    VisionTransformer model(config);
    model->eval();
    const auto images = torch::randn({2, 3, 16, 24});
    ExplainOptions options;
    options.method = MapMethod::kPool;
    const auto explained = explain_vit(model, images, options);
    torch::NoGradGuard no_grad;
    const auto out = model->forward_all(images, false);
    const int64_t cells = explained.maps.size(2) * explained.maps.size(3);
    const int64_t prefix = c.class_token && c.include_prefix ? 1 : 0;
    ASSERT_EQ(out.pool_weights.size(1), prefix + cells);
    EXPECT_TRUE(torch::allclose(explained.maps.reshape({2, -1}),
                                out.pool_weights.narrow(1, prefix, cells)));
    const auto total = explained.maps.sum({1, 2, 3});
    if (prefix) {
      EXPECT_TRUE((total < 1.0).all().item<bool>()) << total;
    } else {
      EXPECT_TRUE(torch::allclose(total, torch::ones({2}))) << total;
    }
  }
}

}  // namespace
}  // namespace attnkit::vision
