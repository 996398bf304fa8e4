// tests/vision/models/vit_test.cpp: ViT invariants for every architecture variant, and the timm
// importer reading each variant's architecture off its tensors.
#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "tests/vision/test_support.h"
#include "vision/checkpoint/import.h"
#include "vision/checkpoint/model_file.h"
#include "vision/checkpoint/safetensors.h"
#include "vision/errors.h"
#include "vision/models/test_time_augmentation.h"
#include "vision/models/vit.h"

namespace attnkit::vision {
namespace {

ViTConfig tiny() { return attnkit::testing::tiny_vit_config(32, 48, 7); }

struct Variant {
  const char* name;
  ViTConfig config;
};

std::vector<Variant> variants() {
  std::vector<Variant> out;
  out.push_back({"token", tiny()});
  auto avg = tiny();
  avg.pooling = Pooling::kAvg;
  avg.fc_norm = true;
  avg.class_token = false;
  out.push_back({"avg_no_class_token", avg});
  auto map = tiny();
  map.pooling = Pooling::kMap;
  map.class_token = false;
  map.qk_norm = true;
  out.push_back({"map_qk_norm", map});
  auto map_cls = tiny();
  map_cls.pooling = Pooling::kMap;
  map_cls.register_tokens = 2;
  out.push_back({"map_patches_only", map_cls});
  map_cls.pool_include_prefix = true;
  out.push_back({"map_include_prefix", map_cls});
  auto registers = tiny();
  registers.register_tokens = 4;
  registers.pos_embed_prefix = false;
  registers.layer_scale = true;
  registers.layer_scale_init = 0.5;
  out.push_back({"registers_layer_scale", registers});
  auto deit = tiny();
  deit.distillation_token = true;
  out.push_back({"deit_distilled", deit});
  auto clip = tiny();
  clip.pre_norm = true;
  clip.patch_bias = false;
  clip.qkv_bias = false;
  out.push_back({"pre_norm_no_bias", clip});
  return out;
}

void PrintTo(const Variant& variant, std::ostream* os) { *os << variant.name; }

class ViTVariant : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override { torch::manual_seed(3); }
};

TEST_P(ViTVariant, ShapesAttentionRowsAndAnyInputSize) {
  const ViTConfig config = GetParam().config;
  VisionTransformer model(config);
  model->eval();
  torch::NoGradGuard no_grad;
  for (auto [h, w] : {std::pair<int64_t, int64_t>{32, 48}, {40, 24}, {64, 64}}) {
    auto images = torch::randn({2, 3, h, w});
    auto out = model->forward_all(images, /*keep_attention=*/true);
    EXPECT_TRUE(torch::allclose(out.logits, model->forward(images), 1e-5, 1e-6));
    const int64_t tokens = config.num_prefix_tokens() + (h / 8) * (w / 8);
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 7}));
    EXPECT_EQ(out.grid_height, h / 8);
    EXPECT_EQ(out.grid_width, w / 8);
    ASSERT_EQ(out.attentions.size(), 2u);
    for (const auto& a : out.attentions) {
      ASSERT_EQ(a.sizes(), (std::vector<int64_t>{2, 3, tokens, tokens}));
      EXPECT_TRUE(torch::allclose(a.sum(-1), torch::ones({2, 3, tokens}), 1e-5, 1e-5));
    }
    if (config.pooling == Pooling::kMap) {
      const int64_t pooled = config.pool_include_prefix ? tokens : (h / 8) * (w / 8);
      ASSERT_EQ(out.pool_weights.sizes(), (std::vector<int64_t>{2, pooled}));
      EXPECT_TRUE(torch::allclose(out.pool_weights.sum(1), torch::ones({2}), 1e-5, 1e-5));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, ViTVariant, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_P(ViTVariant, TimmImportReadsTheArchitectureOffTheTensors) {
  const ViTConfig config = GetParam().config;
  VisionTransformer original(config);
  original->eval();
  attnkit::testing::TempDir dir;
  // Write the model as a timm Hub repository: timm's names, config.json with pretrained_cfg.
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  const std::regex pool(R"(^attn_pool\.attention\.)");
  for (auto& [name, tensor] : module_tensors(*original)) {
    tensors.emplace_back(std::regex_replace(name, pool, "attn_pool."), tensor);
  }
  save_safetensors(dir.file("model.safetensors"), tensors);
  nlohmann::json timm = {
      {"architecture", "vit_custom_patch8"},
      {"num_classes", 7},
      {"global_pool", to_string(config.pooling)},
      {"model_args", {{"num_heads", 3}, {"pool_include_prefix", config.pool_include_prefix}}},
      {"pretrained_cfg",
       {{"input_size", {3, 32, 48}},
        {"interpolation", "bicubic"},
        {"crop_pct", 0.95},
        {"mean", {0.5, 0.5, 0.5}},
        {"std", {0.5, 0.5, 0.5}}}}};
  std::ofstream(dir.file("config.json")) << timm.dump();

  auto imported = import_timm(dir.path().string());
  const ViTConfig& c = imported.config;
  ViTConfig expected = config;
  expected.layer_scale_init = c.layer_scale_init;  // an initial value: no checkpoint records it
  EXPECT_EQ(c.to_json(), expected.to_json());
  VisionTransformer loaded(c);
  load_tensors_strict(*loaded, imported.tensors, dir.path().string());
  loaded->eval();
  torch::NoGradGuard no_grad;
  auto images = torch::randn({2, 3, 32, 48});
  EXPECT_TRUE(torch::allclose(loaded->forward(images), original->forward(images), 1e-6, 1e-6));
  EXPECT_DOUBLE_EQ(imported.info.preprocess.crop_pct, 0.95);
  EXPECT_EQ(imported.info.preprocess.height, 32);
  EXPECT_EQ(imported.info.preprocess.width, 48);
}

TEST(ViT, DistilledLogitsAverageTheTwoHeads) {
  auto config = tiny();
  config.distillation_token = true;
  VisionTransformer model(config);
  model->eval();
  torch::NoGradGuard no_grad;
  auto images = torch::randn({3, 3, 32, 48});
  auto tokens = model->forward_features(images);
  auto expected = (model->head(tokens.select(1, 0)) + model->head_dist(tokens.select(1, 1))) / 2;
  EXPECT_TRUE(torch::allclose(model->forward(images), expected, 1e-6, 1e-6));
}

// Flip TTA is the mean of the two probability vectors, mirror-invariant, and a no-op on an image
// that is its own mirror; without TTA the rows are the plain log-softmax.
TEST(TestTimeAugmentation, FlipAveragesTheImageAndItsMirror) {
  torch::manual_seed(3);
  VisionTransformer model(attnkit::testing::tiny_vit_config(16, 24, 5));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({3, 3, 16, 24});
  const auto mirror = x.flip({3});
  const auto none = class_log_probabilities(model, x, TestTimeAugmentation::kNone);
  EXPECT_TRUE(torch::allclose(none, torch::log_softmax(model->forward(x), 1), 1e-5, 1e-6));
  const auto flip = class_log_probabilities(model, x, TestTimeAugmentation::kFlip);
  const auto expected = torch::log(0.5 * torch::softmax(model->forward(x), 1) +
                                   0.5 * torch::softmax(model->forward(mirror), 1));
  EXPECT_TRUE(torch::allclose(flip, expected, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(flip.exp().sum(1), torch::ones({3}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(
      flip, class_log_probabilities(model, mirror, TestTimeAugmentation::kFlip), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(flip, none, 1e-3, 1e-3));  // the mirror does change the answer
  const auto symmetric = torch::cat({x, mirror}, 3).narrow(3, 12, 24);  // its own mirror
  EXPECT_TRUE(torch::allclose(
      class_log_probabilities(model, symmetric, TestTimeAugmentation::kFlip),
      class_log_probabilities(model, symmetric, TestTimeAugmentation::kNone), 1e-5, 1e-6));

  EXPECT_EQ(test_time_augmentation_from_string("flip"), TestTimeAugmentation::kFlip);
  EXPECT_EQ(to_string(TestTimeAugmentation::kNone), "none");
  EXPECT_THROW(test_time_augmentation_from_string("mirror"), std::invalid_argument);
}

TEST(ViT, PositionResamplingKeepsPrefixAndConstants) {
  auto pos = torch::randn({1, 1 + 4 * 6, 5});
  EXPECT_TRUE(torch::equal(resample_position_embeddings(pos, 1, 4, 6, 4, 6), pos));
  // A grid constant per channel stays constant at any size, the prefix row is untouched.
  auto constant = torch::cat({torch::randn({1, 1, 5}), torch::arange(5.0).expand({1, 24, 5})}, 1);
  auto resized = resample_position_embeddings(constant, 1, 4, 6, 7, 3);
  ASSERT_EQ(resized.sizes(), (std::vector<int64_t>{1, 1 + 21, 5}));
  EXPECT_TRUE(torch::equal(resized.select(1, 0), constant.select(1, 0)));
  EXPECT_TRUE(
      torch::allclose(resized.narrow(1, 1, 21), torch::arange(5.0).expand({1, 21, 5}), 1e-5, 1e-5));
  EXPECT_THROW(resample_position_embeddings(pos, 0, 4, 6, 2, 2), c10::Error);
}

TEST(ViTConfig, JsonRoundTripNamesAndValidation) {
  auto c = tiny();
  c.register_tokens = 2;
  c.pooling = Pooling::kMap;
  c.class_token = false;
  EXPECT_EQ(ViTConfig::from_json(c.to_json()).to_json(), c.to_json());
  auto b = ViTConfig::from_name("vit_base_patch16_224");
  EXPECT_EQ(b.dim, 768);
  EXPECT_EQ(b.num_heads, 12);
  EXPECT_EQ(b.mlp_hidden_dim, 3072);
  auto l = ViTConfig::from_name("vit_large_patch14_336");
  EXPECT_EQ(l.depth, 24);
  EXPECT_EQ(l.patch_size, 14);
  EXPECT_EQ(l.image_height, 336);
  EXPECT_THROW(ViTConfig::from_name("resnet50"), std::invalid_argument);
  auto bad = tiny();
  bad.num_heads = 5;
  try {
    bad.validate();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dim (24) must be divisible by num_heads (5)"),
              std::string::npos);
  }
  EXPECT_THROW(ViTConfig::from_json("{\"dim\": \"wide\"}"), std::invalid_argument);
  EXPECT_THROW(ViTConfig::from_json("[1, 2]"), std::invalid_argument);
  // Numbers an integer field cannot hold are refused by name (casting them was undefined).
  for (const std::string bad : {R"({"patch_size": 1e300})", R"({"image_size": [224, 1e300]})",
                                R"({"dim": 18446744073709551615})", R"({"stem_channels": [8.5]})",
                                R"({"dim": 16.0})", R"({"norm_eps": 1e400})"}) {
    try {
      ViTConfig::from_json(bad);
      ADD_FAILURE() << bad;
    } catch (const std::invalid_argument& e) {
      // "ViT config: dim must be an integer, ..." or, for 1e400, which the parser itself
      // refuses, "ViT config is not valid JSON: number overflow ...".
      EXPECT_EQ(std::string(e.what()).rfind("ViT config", 0), 0u) << e.what();
    }
  }
}

TEST(ModelFile, StrictLoadingReportsEveryProblemAtOnce) {
  VisionTransformer model(tiny());
  NamedTensors tensors = module_tensors(*model);
  tensors.erase(tensors.begin());                           // cls_token missing
  tensors.emplace_back("extra.weight", torch::zeros({2}));  // unexpected
  for (auto& [name, t] : tensors) {
    if (name == "head.weight") t = torch::zeros({10, 24});  // wrong shape
  }
  try {
    load_tensors_strict(*model, tensors, "m.safetensors");
    FAIL();
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("m.safetensors: "), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 missing tensor(s) (cls_token)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 unexpected tensor(s) (extra.weight)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'head.weight' has shape [10, 24], model expects [7, 24]"),
              std::string::npos)
        << msg;
  }
}

TEST(ModelFile, SaveLoadRoundTripKeepsWeightsAndMetadata) {
  attnkit::testing::TempDir dir;
  VisionTransformer model(tiny());
  model->eval();
  ModelInfo info;
  info.config_json = tiny().to_json();
  info.labels = {"a", "b", "c", "d", "e", "f", "g"};
  info.preprocess.height = 32;
  info.preprocess.width = 48;
  info.source = "unit test";
  save_model(dir.file("m.safetensors"), *model, info);
  auto loaded = load_vit(dir.file("m.safetensors"));
  EXPECT_EQ(loaded.info.labels, info.labels);
  EXPECT_EQ(loaded.info.source, "unit test");
  EXPECT_EQ(loaded.info.preprocess.width, 48);
  torch::NoGradGuard no_grad;
  auto images = torch::randn({1, 3, 32, 48});
  EXPECT_TRUE(torch::equal(loaded.model->forward(images), model->forward(images)));
  // Labels that do not fit the head are refused with the reason.
  info.labels.pop_back();
  save_model(dir.file("bad.safetensors"), *model, info);
  try {
    load_vit(dir.file("bad.safetensors"));
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("6 labels for 7 classes"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attnkit::vision
