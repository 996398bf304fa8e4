// tests/vision/train/classifier_trainer_test.cpp: the training loop learns a planted task, resumes
// exactly, and its pieces (schedule, augmentation, targets, metrics, conv stem) do what they say.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "tests/vision/test_support.h"
#include "vision/checkpoint/model_file.h"
#include "vision/cpu_features.h"
#include "vision/errors.h"
#include "vision/image/preprocess.h"
#include "vision/train/augment.h"
#include "vision/train/classification_metrics.h"
#include "vision/train/classifier_trainer.h"
#include "vision/train/lr_schedule.h"
#include "vision/train/train_checkpoint.h"

namespace attnkit::vision {
namespace {

using attnkit::testing::TempDir;

/// 16x16 grey images with one bright 4x4 square; the class is the quadrant it sits in.
LabeledImages quadrant_dataset(int64_t count, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  LabeledImages data;
  data.images = torch::zeros({count, 1, 16, 16}, torch::kUInt8);
  data.labels = torch::randint(4, {count}, generator, torch::kLong);
  auto jitter = torch::randint(5, {count, 2}, generator, torch::kLong);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t q = data.labels[i].item<int64_t>();
    const int64_t top = (q / 2) * 8 + jitter[i][0].item<int64_t>() / 2;
    const int64_t left = (q % 2) * 8 + jitter[i][1].item<int64_t>() / 2;
    data.images[i][0].narrow(0, top, 4).narrow(1, left, 4).fill_(255);
  }
  data.classes = {"top-left", "top-right", "bottom-left", "bottom-right"};
  return data;
}

ViTConfig quadrant_config() {
  ViTConfig c;
  c.image_height = c.image_width = 16;
  c.in_channels = 1;
  c.patch_size = 4;
  c.stem_channels = {8};
  c.dim = 32;
  c.depth = 1;
  c.num_heads = 2;
  c.mlp_hidden_dim = 64;
  c.class_token = false;
  c.pooling = Pooling::kAvg;
  c.fc_norm = true;
  c.num_classes = 4;
  return c;
}

ModelInfo quadrant_info() {
  ModelInfo info;
  info.config_json = quadrant_config().to_json();
  info.labels = quadrant_dataset(1, 0).classes;
  info.preprocess.height = info.preprocess.width = 16;
  info.preprocess.channels = 1;
  info.preprocess.mean = {0.1, 0.1, 0.1};
  info.preprocess.std = {0.3, 0.3, 0.3};
  return info;
}

ClassifierTrainOptions quick_options() {
  ClassifierTrainOptions o;
  o.epochs = 4;
  o.batch_size = 32;
  o.lr = 3e-3;
  o.warmup_epochs = 0.5;
  o.augment.horizontal_flip = false;  // a flip would change the quadrant
  o.augment.crop_padding = 1;
  o.augment.erase_probability = 0.0;
  o.bf16 = false;
  return o;
}

std::vector<nlohmann::json> read_log(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(ClassifierTrainer, LearnsAPlantedTaskAndWritesLoadableModels) {
  TempDir dir;
  torch::manual_seed(0);
  VisionTransformer model(quadrant_config());
  ClassifierTrainer trainer(model, quadrant_info(), quadrant_dataset(512, 1),
                            quadrant_dataset(128, 2), quick_options(), dir.path().string());
  const auto state = trainer.run();
  EXPECT_EQ(state.epoch, 4);
  EXPECT_FALSE(state.stopped_early);
  EXPECT_EQ(state.step, 4 * (512 / 32));
  const auto log = read_log(trainer.log_path());
  ASSERT_EQ(log.size(), 4u);
  EXPECT_LT(log.back()["val_loss"].get<double>(), log.front()["val_loss"].get<double>());
  EXPECT_LT(log.back()["train_loss"].get<double>(), log.front()["train_loss"].get<double>());
  EXPECT_GT(log.back()["val_top1"].get<double>(), 0.9);

  // best.safetensors and last.safetensors are model files every command can load.
  for (const auto& path : {trainer.best_path(), trainer.last_path()}) {
    auto loaded = load_vit(path);
    const auto metrics =
        evaluate_classifier(loaded.model, quadrant_dataset(128, 2), loaded.info.preprocess, 50);
    EXPECT_GT(metrics.top1, 0.9) << path;
  }
}

TEST(ClassifierTrainer, ResumeRepeatsTheUninterruptedRun) {
  const int threads_before = at::get_num_threads();
  at::set_num_threads(1);  // bitwise-repeatable reductions
  auto options = quick_options();
  options.epochs = 2;
  options.bf16 = cpu_features().native_bf16();  // the default path of this CPU; never emulated
  options.augment.erase_probability = 0.5;
  options.augment.mixup_alpha = 0.4;
  options.augment.cutmix_alpha = 1.0;
  const auto train = quadrant_dataset(192, 3), val = quadrant_dataset(64, 4);

  TempDir straight_dir, split_dir;
  torch::manual_seed(5);
  VisionTransformer straight(quadrant_config());
  VisionTransformer interrupted(quadrant_config());
  load_tensors_strict(*interrupted, module_tensors(*straight), "copy");
  ClassifierTrainer(straight, quadrant_info(), train, val, options, straight_dir.path().string())
      .run();

  // Stop after 8 steps (inside epoch 2), then resume into a fresh model and optimizer.
  auto first_options = options;
  first_options.max_steps = 8;
  ClassifierTrainer first(interrupted, quadrant_info(), train, val, first_options,
                          split_dir.path().string());
  EXPECT_EQ(first.run().step, 8);
  VisionTransformer resumed(quadrant_config());
  ClassifierTrainer second(resumed, quadrant_info(), train, val, options,
                           split_dir.path().string());
  second.resume(first.last_path());
  EXPECT_EQ(second.state().step, 8);
  EXPECT_EQ(second.state().epoch, 1);
  EXPECT_EQ(second.state().batch, 2);
  EXPECT_EQ(second.run().step, 12);

  const auto a = module_tensors(*straight), b = module_tensors(*resumed);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  // The log has both epochs once, with the same figures as the straight run.
  const auto log_a = read_log(straight_dir.file("log.jsonl"));
  const auto log_b = read_log(split_dir.file("log.jsonl"));
  ASSERT_EQ(log_b.size(), 2u);
  EXPECT_EQ(log_a[1]["val_top1"], log_b[1]["val_top1"]);
  EXPECT_NEAR(log_a[1]["train_loss"].get<double>(), log_b[1]["train_loss"].get<double>(), 1e-12);
  at::set_num_threads(threads_before);
}

TEST(ClassifierTrainer, StopsEarlyWhenValidationStopsImproving) {
  TempDir dir;
  auto options = quick_options();
  options.epochs = 10;
  options.lr = 0.0;  // nothing changes, so validation never improves after epoch 1
  options.min_lr = 0.0;
  options.patience = 2;
  auto config = quadrant_config();
  config.stem_channels = {};  // BatchNorm statistics would still move with a zero learning rate
  VisionTransformer model(config);
  ClassifierTrainer trainer(model, quadrant_info(), quadrant_dataset(64, 1),
                            quadrant_dataset(32, 2), options, dir.path().string());
  const auto state = trainer.run();
  EXPECT_TRUE(state.stopped_early);
  EXPECT_EQ(state.epoch, 3);
  EXPECT_EQ(state.best_epoch, 1);
  EXPECT_EQ(read_log(trainer.log_path()).size(), 3u);
}

TEST(ClassifierTrainer, ResumeRejectsAPlainModelFile) {
  TempDir dir;
  VisionTransformer model(quadrant_config());
  save_model(dir.file("plain.safetensors"), *model, quadrant_info());
  ClassifierTrainer trainer(model, quadrant_info(), quadrant_dataset(64, 1), {}, quick_options(),
                            dir.path().string());
  EXPECT_THROW(trainer.resume(dir.file("plain.safetensors")), CheckpointError);
}

TEST(LearningRate, WarmsUpThenFollowsTheCosine) {
  const int64_t warmup = 10, total = 110;
  EXPECT_DOUBLE_EQ(warmup_cosine_lr(0, warmup, total, 1.0, 0.0), 0.1);
  EXPECT_DOUBLE_EQ(warmup_cosine_lr(9, warmup, total, 1.0, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(warmup_cosine_lr(10, warmup, total, 1.0, 0.01), 1.0);
  EXPECT_NEAR(warmup_cosine_lr(10 + 99 / 2, warmup, total, 1.0, 0.0),
              0.5 * (1 + std::cos(M_PI * 49.0 / 99.0)), 1e-12);
  EXPECT_DOUBLE_EQ(warmup_cosine_lr(total - 1, warmup, total, 1.0, 0.01), 0.01);
  for (int64_t s = warmup; s + 1 < total; ++s) {
    EXPECT_GE(warmup_cosine_lr(s, warmup, total, 1.0, 0.01),
              warmup_cosine_lr(s + 1, warmup, total, 1.0, 0.01));
  }
}

TEST(Augment, CropShiftsAndFlipMirrors) {
  auto generator = at::detail::createCPUGenerator(1);
  auto images = torch::zeros({64, 1, 9, 9}, torch::kUInt8);
  images.select(2, 4).select(2, 2).fill_(200);  // one pixel at (4, 2) in every image
  AugmentOptions options;
  options.crop_padding = 2;
  const auto out = augment_geometry(images, options, generator);
  ASSERT_EQ(out.sizes(), images.sizes());
  std::set<std::pair<int64_t, int64_t>> seen;
  int flipped = 0;
  for (int64_t b = 0; b < 64; ++b) {
    auto hot = out[b][0].nonzero();
    ASSERT_LE(hot.size(0), 1);
    if (hot.size(0) == 0) continue;  // shifted out of view is impossible with pad 2: fail below
    const int64_t y = hot[0][0].item<int64_t>(), x = hot[0][1].item<int64_t>();
    EXPECT_LE(std::abs(y - 4), 2);
    // Unflipped x is within 2 of 2; flipped it is within 2 of 6.
    const bool near_left = std::abs(x - 2) <= 2, near_right = std::abs(x - 6) <= 2;
    EXPECT_TRUE(near_left || near_right) << x;
    flipped += near_right && !near_left;
    seen.insert({y, x});
  }
  EXPECT_EQ(out.nonzero().size(0), 64);  // the pixel is never lost
  EXPECT_GT(seen.size(), 10u);
  EXPECT_GT(flipped, 10);
  EXPECT_LT(flipped, 54);
}

TEST(Augment, ErasingChangesABoxInEveryImageWhenCertain) {
  auto generator = at::detail::createCPUGenerator(2);
  auto images = torch::zeros({16, 3, 20, 20});
  AugmentOptions options;
  options.erase_probability = 1.0;
  random_erase_(images, options, generator);
  for (int64_t b = 0; b < 16; ++b) {
    const auto changed = images[b][0].ne(0).sum().item<int64_t>();
    EXPECT_GE(changed, 4);    // at least 2% of 400 pixels
    EXPECT_LE(changed, 140);  // at most a third, plus rounding
  }
}

TEST(Augment, SmoothedAndMixedTargetsStayDistributions) {
  auto targets = smooth_targets(torch::tensor({0, 3, 1}), 4, 0.1);
  EXPECT_TRUE(torch::allclose(targets.sum(1), torch::ones({3})));
  EXPECT_NEAR(targets[1][3].item<double>(), 0.9 + 0.025, 1e-6);
  EXPECT_NEAR(targets[1][0].item<double>(), 0.025, 1e-6);

  auto generator = at::detail::createCPUGenerator(3);
  for (bool cutmix : {false, true}) {
    auto images = torch::arange(4, torch::kFloat).view({4, 1, 1, 1}).expand({4, 1, 8, 8}).clone();
    auto soft = smooth_targets(torch::tensor({0, 1, 2, 3}), 4, 0.0);
    AugmentOptions options;
    options.mixup_alpha = cutmix ? 0.0 : 1.0;
    options.cutmix_alpha = cutmix ? 1.0 : 0.0;
    mix_batch_(images, soft, options, generator);
    EXPECT_TRUE(torch::allclose(soft.sum(1), torch::ones({4})));
    // Image 0 is mixed with image 3; the share of 3 in its pixels equals its target weight.
    const double share = images[0].mean().item<double>() / 3.0;
    EXPECT_NEAR(soft[0][3].item<double>(), share, 1e-5);
    EXPECT_NEAR(soft[0][0].item<double>(), 1 - share, 1e-5);
  }
  auto logits = torch::tensor({{2.0, 0.0}, {0.0, 1.0}});
  auto hard = smooth_targets(torch::tensor({0, 1}), 2, 0.0);
  EXPECT_NEAR(soft_cross_entropy(logits, hard).item<double>(),
              torch::cross_entropy_loss(logits, torch::tensor({0, 1})).item<double>(), 1e-6);
}

TEST(ClassificationMetrics, CountsAgreeWithTheModelsOwnPredictions) {
  torch::manual_seed(1);
  VisionTransformer model(quadrant_config());
  model->eval();
  auto data = quadrant_dataset(40, 9);
  const auto info = quadrant_info();
  torch::Tensor predicted;
  {
    torch::NoGradGuard no_grad;
    predicted = model->forward(normalize_pixels(data.images, info.preprocess)).argmax(1);
  }
  data.labels = predicted;
  auto m = evaluate_classifier(model, data, info.preprocess, 7);
  EXPECT_DOUBLE_EQ(m.top1, 1.0);
  EXPECT_DOUBLE_EQ(m.top5, 1.0);
  EXPECT_EQ(m.confusion.diagonal().sum().item<int64_t>(), 40);
  data.labels = (predicted + 1) % 4;
  m = evaluate_classifier(model, data, info.preprocess, 64);
  EXPECT_DOUBLE_EQ(m.top1, 0.0);
  EXPECT_EQ(m.confusion.sum().item<int64_t>(), 40);
  EXPECT_EQ(m.confusion.diagonal().sum().item<int64_t>(), 0);
  EXPECT_TRUE(torch::equal(m.confusion.sum(0), torch::bincount(predicted, {}, 4)));
}

TEST(ConvStem, ProducesTheSameGridAsPatchesAndRoundTripsItsConfig) {
  auto config = quadrant_config();
  config.stem_channels = {8, 16};
  VisionTransformer model(config);
  auto out = model->forward_all(torch::randn({2, 1, 24, 32}), false);
  EXPECT_EQ(out.grid_height, 6);
  EXPECT_EQ(out.grid_width, 8);
  EXPECT_EQ(out.tokens.sizes(), (std::vector<int64_t>{2, 48, 32}));
  EXPECT_EQ(ViTConfig::from_json(config.to_json()).stem_channels, config.stem_channels);
  EXPECT_TRUE(model->named_buffers().contains("patch_embed.stem.1.bn.running_mean"));
  EXPECT_EQ(model->named_parameters()["patch_embed.proj.weight"].sizes(),
            (std::vector<int64_t>{32, 16, 1, 1}));
  config.stem_channels = {8, 8, 8};  // stride 8 does not divide patch 4
  EXPECT_THROW(config.validate(), std::invalid_argument);
}

// Stride-1 stages add depth at full resolution: the same grid, a 1x1 projection only after the
// two stride-2 stages, and a 2x2 one after a single stride-2 stage.
TEST(ConvStem, StrideOneStagesKeepTheResolution) {
  auto config = quadrant_config();
  config.stem_channels = {4, 8, 8, 16};
  config.stem_strides = {1, 2, 1, 2};
  EXPECT_EQ(config.stem_stride(), 4);
  VisionTransformer model(config);
  auto out = model->forward_all(torch::randn({2, 1, 24, 32}), false);
  EXPECT_EQ(out.grid_height, 6);
  EXPECT_EQ(out.grid_width, 8);
  const auto params = model->named_parameters();
  EXPECT_EQ(params["patch_embed.stem.0.conv.weight"].sizes(), (std::vector<int64_t>{4, 1, 3, 3}));
  EXPECT_EQ(params["patch_embed.stem.3.conv.weight"].sizes(), (std::vector<int64_t>{16, 8, 3, 3}));
  EXPECT_EQ(params["patch_embed.proj.weight"].sizes(), (std::vector<int64_t>{32, 16, 1, 1}));
  EXPECT_EQ(ViTConfig::from_json(config.to_json()).stem_strides, config.stem_strides);

  config.stem_channels = {4, 8};
  config.stem_strides = {1, 2};
  EXPECT_EQ(VisionTransformer(config)->named_parameters()["patch_embed.proj.weight"].sizes(),
            (std::vector<int64_t>{32, 8, 2, 2}));
  // A file written before stem_strides existed reads as all stride 2.
  auto old_json = nlohmann::json::parse(config.to_json());
  old_json.erase("stem_strides");
  EXPECT_EQ(ViTConfig::from_json(old_json.dump()).stem_stride(), 4);

  config.stem_strides = {1};  // one stride for two stages
  EXPECT_THROW(config.validate(), std::invalid_argument);
  config.stem_strides = {3, 1};
  EXPECT_THROW(config.validate(), std::invalid_argument);
  config.stem_strides = {1, 1};  // total stride 1 divides any patch
  EXPECT_NO_THROW(config.validate());
}

}  // namespace
}  // namespace attnkit::vision
