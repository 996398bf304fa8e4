// tests/vision/models/vit_oracle_test.cpp: attnkit's ViT against torchvision's VisionTransformer
// (tests/oracle/vit_reference.py) for the torchvision, timm and Hugging Face layouts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "tests/vision/test_support.h"
#include "vision/checkpoint/import.h"
#include "vision/checkpoint/model_file.h"
#include "vision/models/vit.h"

namespace attnkit::vision {
namespace {

const std::string kOracleDir = std::string(ATTNKIT_TEST_DATA_DIR) + "/vit_oracle";

struct Layout {
  const char* config;
  CheckpointFormat format;
  const char* relative_path;
  int64_t num_heads;  ///< torchvision files cannot tell heads for non-standard widths
};

void PrintTo(const Layout& layout, std::ostream* os) {
  *os << layout.config << "/" << to_string(layout.format);
}

class ViTOracle : public ::testing::TestWithParam<Layout> {
 protected:
  static void SetUpTestSuite() {
    error_ = attnkit::testing::run_oracle("vit_reference.py --out " + kOracleDir,
                                          kOracleDir + "/manifest.json");
  }
  static std::string error_;
};
std::string ViTOracle::error_;

TEST_P(ViTOracle, LogitsMatchTorchvisionAtNativeAndNonSquareSizes) {
  ASSERT_EQ(error_, "");
  const Layout layout = GetParam();
  const std::string dir = kOracleDir + "/" + layout.config;
  ImportOptions options;
  options.num_heads = layout.num_heads;
  auto imported = import_checkpoint(dir + "/" + layout.relative_path, layout.format, options);
  VisionTransformer model(imported.config);
  load_tensors_strict(*model, imported.tensors, dir);
  model->eval();

  std::ifstream manifest_file(kOracleDir + "/manifest.json");
  const auto manifest = nlohmann::json::parse(manifest_file);
  for (const auto& entry : manifest) {
    if (entry["name"] != layout.config) continue;
    for (const auto& c : entry["cases"]) {
      const std::string tag = c["tag"];
      auto input = attnkit::testing::read_raw_f32(dir + "/" + tag + "_input.f32",
                                                  c["input_shape"].get<std::vector<int64_t>>());
      auto expected = attnkit::testing::read_raw_f32(dir + "/" + tag + "_logits.f32",
                                                     c["logits_shape"].get<std::vector<int64_t>>());
      torch::NoGradGuard no_grad;
      auto logits = model->forward(input);
      const double error = (logits - expected).abs().max().item<double>();
      RecordProperty(tag + "_max_abs_error", std::to_string(error));
      std::cout << "[oracle] " << layout.config << " " << to_string(layout.format) << " " << tag
                << " " << input.sizes() << ": max abs error " << error << std::endl;
      EXPECT_LE(error, 1e-4) << tag;
    }
    return;
  }
  FAIL() << "config " << layout.config << " not in the manifest";
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, ViTOracle,
    ::testing::Values(Layout{"small", CheckpointFormat::kTorchvision, "torchvision.safetensors", 4},
                      Layout{"small", CheckpointFormat::kTimm, "timm", 0},
                      Layout{"small", CheckpointFormat::kHuggingFace, "hf", 0},
                      // timm's attention-pool head, without and with pool_include_prefix.
                      Layout{"small_map", CheckpointFormat::kTimm, "timm", 0},
                      Layout{"small_map_prefix", CheckpointFormat::kTimm, "timm", 0},
                      Layout{"patch8", CheckpointFormat::kTorchvision, "torchvision.safetensors",
                             2},
                      Layout{"patch8", CheckpointFormat::kTimm, "timm", 0},
                      Layout{"patch8", CheckpointFormat::kHuggingFace, "hf", 0},
                      Layout{"base", CheckpointFormat::kTorchvision, "torchvision.safetensors", 0},
                      Layout{"base", CheckpointFormat::kTimm, "timm", 0},
                      Layout{"base", CheckpointFormat::kHuggingFace, "hf", 0}),
    [](const auto& info) {
      return std::string(info.param.config) + "_" + to_string(info.param.format);
    });

TEST(ViTImport, DetectsEachLayoutAndRecordsItsPreprocessing) {
  ASSERT_EQ(attnkit::testing::run_oracle("vit_reference.py --out " + kOracleDir,
                                         kOracleDir + "/manifest.json"),
            "");
  const std::string dir = kOracleDir + "/small";
  EXPECT_EQ(detect_checkpoint_format(dir + "/timm"), CheckpointFormat::kTimm);
  EXPECT_EQ(detect_checkpoint_format(dir + "/hf"), CheckpointFormat::kHuggingFace);
  EXPECT_EQ(detect_checkpoint_format(dir + "/torchvision.safetensors"),
            CheckpointFormat::kTorchvision);

  auto timm = import_timm(dir + "/timm");
  EXPECT_EQ(timm.config.num_heads, 4);  // from model_args
  EXPECT_EQ(timm.info.preprocess.interpolation, Interpolation::kBicubic);
  EXPECT_DOUBLE_EQ(timm.info.preprocess.crop_pct, 0.9);
  EXPECT_EQ(timm.info.labels.at(3), "label 3");

  auto hf = import_hf(dir + "/hf");
  EXPECT_DOUBLE_EQ(hf.config.norm_eps, 1e-6);
  EXPECT_EQ(hf.info.preprocess.crop_mode, CropMode::kSquash);
  EXPECT_EQ(hf.info.preprocess.interpolation, Interpolation::kBilinear);
  EXPECT_EQ(hf.info.labels.at(2), "hf label 2");

  auto tv = import_torchvision(dir + "/torchvision.safetensors", {.num_heads = 4});
  EXPECT_EQ(tv.config.image_height, 64);
  EXPECT_EQ(tv.info.preprocess.interpolation, Interpolation::kBicubic);  // not a 224 model

  auto base = import_torchvision(kOracleDir + "/base/torchvision.safetensors");
  EXPECT_EQ(base.config.num_heads, 12);
  EXPECT_DOUBLE_EQ(base.info.preprocess.crop_pct, 224.0 / 256.0);
  EXPECT_EQ(base.info.labels.at(281), "tabby");
}

}  // namespace
}  // namespace attnkit::vision
