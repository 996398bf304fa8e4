// vision/explain/cascading_randomization.cpp: stage-by-stage re-initialisation of a ViT.
#include "vision/explain/cascading_randomization.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace attnkit::vision {

std::vector<std::string> randomization_stages(const ViTConfig& config) {
  std::vector<std::string> stages{"head"};
  for (int64_t i = config.depth - 1; i >= 0; --i) stages.push_back("block " + std::to_string(i));
  stages.push_back("embedding");
  return stages;
}

namespace {

/// Whether the parameter `name` (timm's naming) belongs to stage `stage` of `depth` blocks.
bool in_stage(const std::string& name, int64_t stage, int64_t depth) {
  const bool block = name.rfind("blocks.", 0) == 0;
  const bool embedding = name.rfind("patch_embed.", 0) == 0 || name == "cls_token" ||
                         name == "dist_token" || name == "reg_token" || name == "pos_embed" ||
                         name.rfind("norm_pre.", 0) == 0;
  if (stage == 0) return !block && !embedding;
  if (stage == depth + 1) return embedding;
  if (!block) return false;
  const auto index = std::stoll(name.substr(7, name.find('.', 7) - 7));
  return index == depth - stage;
}

bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void randomize_stage(VisionTransformer& model, int64_t stage, uint64_t seed) {
  const auto& config = model->config();
  TORCH_CHECK(stage >= 0 && stage <= config.depth + 1, "randomize_stage: stage ", stage, " of 0..",
              config.depth + 1);
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(seed);
  for (auto& item : model->named_parameters()) {
    const auto& name = item.key();
    auto& p = item.value();
    if (!in_stage(name, stage, config.depth)) continue;
    if (ends_with(name, ".gamma")) {
      p.fill_(config.layer_scale_init);
    } else if (p.dim() >= 2) {
      p.copy_(torch::randn(p.sizes(), generator, p.options().dtype(torch::kFloat)) * 0.02);
    } else if (ends_with(name, "bias")) {
      p.zero_();
    } else {
      p.fill_(1.0);  // norm scales
    }
  }
}

VisionTransformer copy_model(VisionTransformer& model) {
  VisionTransformer copy(model->config());
  torch::NoGradGuard no_grad;
  auto source_parameters = model->named_parameters();
  for (auto& item : copy->named_parameters()) item.value().copy_(source_parameters[item.key()]);
  auto source_buffers = model->named_buffers();
  for (auto& item : copy->named_buffers()) item.value().copy_(source_buffers[item.key()]);
  copy->train(model->is_training());
  return copy;
}

}  // namespace attnkit::vision
