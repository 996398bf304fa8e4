// tests/vision/checkpoint/import_hf_test.cpp: the Hugging Face importer on a DeiT written in
// transformers' layout (distillation token, two classifiers, split q/k/v, processor with resize +
// crop).
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "tests/vision/test_support.h"
#include "vision/checkpoint/import.h"
#include "vision/checkpoint/model_file.h"
#include "vision/checkpoint/safetensors.h"
#include "vision/errors.h"
#include "vision/models/vit.h"

namespace attnkit::vision {
namespace {

ViTConfig tiny_deit() {
  auto c = attnkit::testing::tiny_vit_config(32, 32, 5);
  c.distillation_token = true;
  return c;
}

/// Writes `model` as transformers' DeiTForImageClassificationWithTeacher would save it.
void write_hf_deit(VisionTransformer& model, const std::string& dir, double eps) {
  std::map<std::string, torch::Tensor> ours;
  for (auto& [name, t] : module_tensors(*model)) ours[name] = t.detach();
  std::vector<std::pair<std::string, torch::Tensor>> hf = {
      {"deit.embeddings.cls_token", ours["cls_token"]},
      {"deit.embeddings.distillation_token", ours["dist_token"]},
      {"deit.embeddings.position_embeddings", ours["pos_embed"]},
      {"deit.embeddings.patch_embeddings.projection.weight", ours["patch_embed.proj.weight"]},
      {"deit.embeddings.patch_embeddings.projection.bias", ours["patch_embed.proj.bias"]},
      {"deit.layernorm.weight", ours["norm.weight"]},
      {"deit.layernorm.bias", ours["norm.bias"]},
      {"cls_classifier.weight", ours["head.weight"]},
      {"cls_classifier.bias", ours["head.bias"]},
      {"distillation_classifier.weight", ours["head_dist.weight"]},
      {"distillation_classifier.bias", ours["head_dist.bias"]},
  };
  for (int i = 0; i < 2; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    const std::string l = "deit.encoder.layer." + std::to_string(i) + ".";
    for (std::string k : {"weight", "bias"}) {
      auto qkv = ours[b + "attn.qkv." + k].chunk(3, 0);
      hf.emplace_back(l + "attention.attention.query." + k, qkv[0]);
      hf.emplace_back(l + "attention.attention.key." + k, qkv[1]);
      hf.emplace_back(l + "attention.attention.value." + k, qkv[2]);
      hf.emplace_back(l + "attention.output.dense." + k, ours[b + "attn.proj." + k]);
      hf.emplace_back(l + "layernorm_before." + k, ours[b + "norm1." + k]);
      hf.emplace_back(l + "layernorm_after." + k, ours[b + "norm2." + k]);
      hf.emplace_back(l + "intermediate.dense." + k, ours[b + "mlp.fc1." + k]);
      hf.emplace_back(l + "output.dense." + k, ours[b + "mlp.fc2." + k]);
    }
  }
  save_safetensors(dir + "/model.safetensors", hf);
  nlohmann::json config = {
      {"model_type", "deit"},
      {"hidden_size", 24},
      {"num_hidden_layers", 2},
      {"num_attention_heads", 3},
      {"intermediate_size", 40},
      {"hidden_act", "gelu"},
      {"layer_norm_eps", eps},
      {"image_size", 32},
      {"patch_size", 8},
      {"num_channels", 3},
      {"qkv_bias", true},
      {"id2label", {{"0", "a"}, {"1", "b"}, {"2", "c"}, {"3", "d"}, {"4", "e"}}}};
  std::ofstream(dir + "/config.json") << config.dump();
  // DeiT's processor: resize to 36x36 (squash), centre crop 32, bicubic (PIL code 3).
  nlohmann::json processor = {{"do_resize", true},
                              {"size", {{"height", 36}, {"width", 36}}},
                              {"resample", 3},
                              {"do_center_crop", true},
                              {"crop_size", {{"height", 32}, {"width", 32}}},
                              {"do_normalize", true},
                              {"image_mean", {0.485, 0.456, 0.406}},
                              {"image_std", {0.229, 0.224, 0.225}}};
  std::ofstream(dir + "/preprocessor_config.json") << processor.dump();
}

TEST(ImportHf, DeitWithTeacherMatchesTheOriginalModel) {
  torch::manual_seed(5);
  const auto config = tiny_deit();
  VisionTransformer model(config);
  model->eval();
  attnkit::testing::TempDir dir;
  write_hf_deit(model, dir.path().string(), 1e-6);

  auto imported = import_hf(dir.path().string());
  EXPECT_TRUE(imported.config.distillation_token);
  EXPECT_EQ(imported.info.labels, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(imported.info.preprocess.crop_mode, CropMode::kSquash);
  EXPECT_EQ(imported.info.preprocess.interpolation, Interpolation::kBicubic);
  EXPECT_DOUBLE_EQ(imported.info.preprocess.crop_pct, 32.0 / 36.0);
  EXPECT_EQ(imported.info.preprocess.height, 32);
  VisionTransformer loaded(imported.config);
  load_tensors_strict(*loaded, imported.tensors, dir.path().string());
  loaded->eval();
  torch::NoGradGuard no_grad;
  auto images = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::allclose(loaded->forward(images), model->forward(images), 1e-6, 1e-6));
}

TEST(ImportHf, RejectsWhatItCannotRepresent) {
  torch::manual_seed(5);
  VisionTransformer model(tiny_deit());
  attnkit::testing::TempDir dir;
  write_hf_deit(model, dir.path().string(), 1e-12);
  // A tanh-approximate GELU would silently change the logits: refuse it.
  auto config = nlohmann::json::parse(std::ifstream(dir.file("config.json")));
  config["hidden_act"] = "gelu_new";
  std::ofstream(dir.file("config.json")) << config.dump();
  try {
    import_hf(dir.path().string());
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_act 'gelu_new' is not supported"),
              std::string::npos)
        << e.what();
  }
  config["hidden_act"] = "gelu";
  config["model_type"] = "swin";
  std::ofstream(dir.file("config.json")) << config.dump();
  EXPECT_THROW(import_hf(dir.path().string()), CheckpointError);
  attnkit::testing::TempDir empty;
  try {
    import_hf(empty.path().string());
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("no config.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attnkit::vision
