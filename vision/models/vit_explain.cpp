// vision/models/vit_explain.cpp: one forward pass (and a backward one for the class-specific
// methods) that keeps every block's attention, then the maps of attention/attention_maps.
#include "vision/models/vit_explain.h"

#include <stdexcept>

#include <torch/torch.h>

#include "vision/models/eval_mode_guard.h"

namespace attnkit::vision {

MapMethod map_method_from_string(const std::string& name) {
  if (name == "cls") return MapMethod::kClassToken;
  if (name == "rollout") return MapMethod::kRollout;
  if (name == "grad-rollout") return MapMethod::kGradRollout;
  if (name == "pool") return MapMethod::kPool;
  if (name == "relevance") return MapMethod::kRelevance;
  if (name == "gradcam") return MapMethod::kGradCam;
  if (name == "patch") return MapMethod::kPatch;
  if (name == "patch-rollout") return MapMethod::kPatchRollout;
  throw std::invalid_argument(
      "unknown map method '" + name +
      "' (cls, rollout, grad-rollout, relevance, gradcam, pool, patch or patch-rollout)");
}

std::string map_method_name(MapMethod method) {
  switch (method) {
    case MapMethod::kClassToken:
      return "cls";
    case MapMethod::kRollout:
      return "rollout";
    case MapMethod::kGradRollout:
      return "grad-rollout";
    case MapMethod::kPool:
      return "pool";
    case MapMethod::kRelevance:
      return "relevance";
    case MapMethod::kGradCam:
      return "gradcam";
    case MapMethod::kPatch:
      return "patch";
    case MapMethod::kPatchRollout:
      return "patch-rollout";
  }
  return "?";
}

bool is_class_specific(MapMethod method) {
  return method == MapMethod::kGradRollout || method == MapMethod::kRelevance ||
         method == MapMethod::kGradCam;
}

namespace {

/// A layer index as asked (negative counts from the end) -> 0..depth-1, or a clear error.
int64_t resolve_layer(int64_t asked, int64_t depth) {
  const int64_t layer = asked < 0 ? depth + asked : asked;
  if (layer < 0 || layer >= depth) {
    throw std::invalid_argument("layer " + std::to_string(asked) + " out of range: the model has " +
                                std::to_string(depth) + " layers (0.." + std::to_string(depth - 1) +
                                ", or -1)");
  }
  return layer;
}

}  // namespace

attention::TokenLayout token_layout(const ViTConfig& config, int64_t grid_height,
                                    int64_t grid_width) {
  attention::TokenLayout layout;
  layout.class_index = config.class_token ? 0 : -1;
  layout.grid_start = config.num_prefix_tokens();
  layout.grid_height = grid_height;
  layout.grid_width = grid_width;
  // What the head reads: the class token, or (average pooling, map pooling) the patches.
  layout.mean_readout = config.pooling != Pooling::kToken;
  return layout;
}

namespace {

/// The methods' preconditions on the model, checked before any pass.
void check_model_explainable(const ViTConfig& config, const ExplainOptions& options) {
  if (options.method == MapMethod::kPool && config.pooling != Pooling::kMap) {
    throw std::invalid_argument(
        "the pool map needs a model with an attention-pool (map) head; this one pools by " +
        std::string(config.pooling == Pooling::kAvg ? "averaging" : "its class token") +
        " (try cls or rollout)");
  }
  if (config.num_classes == 0) {
    throw std::invalid_argument("the model has no classifier head to explain");
  }
  const bool patch =
      options.method == MapMethod::kPatch || options.method == MapMethod::kPatchRollout;
  if (patch && options.cells.empty()) {
    throw std::invalid_argument("patch attention needs the query patch (a grid cell)");
  }
  if (options.method == MapMethod::kPatch &&
      (options.head >= config.num_heads || options.head < -1)) {
    throw std::invalid_argument("head " + std::to_string(options.head) +
                                " out of range: the model has " + std::to_string(config.num_heads) +
                                " heads (or -1 to fuse them)");
  }
}

/// Every map from one pass `out` (in the autograd graph for the class-specific methods).
Explanation explain_pass(const ViTConfig& config, const ViTOutput& out,
                         const ExplainOptions& options) {
  const bool needs_gradient = is_class_specific(options.method);
  Explanation result;
  result.probabilities = torch::softmax(out.logits.detach().to(torch::kFloat), 1);
  const int64_t batch = out.logits.size(0);
  if (options.target_classes.defined()) {
    TORCH_CHECK(options.target_classes.dim() == 1 && options.target_classes.size(0) == batch,
                "explain_vit: expected ", batch, " target classes, got ",
                options.target_classes.sizes());
    const auto low = options.target_classes.min().item<int64_t>();
    const auto high = options.target_classes.max().item<int64_t>();
    if (low < 0 || high >= config.num_classes) {
      throw std::invalid_argument("class " + std::to_string(low < 0 ? low : high) +
                                  " out of range: the model has " +
                                  std::to_string(config.num_classes) + " classes");
    }
    result.classes = options.target_classes.to(torch::kLong).to(out.logits.device());
  } else if (options.target_class >= 0) {
    if (options.target_class >= config.num_classes) {
      throw std::invalid_argument("class " + std::to_string(options.target_class) +
                                  " out of range: the model has " +
                                  std::to_string(config.num_classes) + " classes");
    }
    result.classes = torch::full({batch}, options.target_class,
                                 torch::TensorOptions(torch::kLong).device(out.logits.device()));
  } else {
    result.classes = result.probabilities.argmax(1);
  }
  const auto layout = token_layout(config, out.grid_height, out.grid_width);
  const auto depth = static_cast<int64_t>(out.attentions.size());
  // What the class-specific methods differentiate: the explained classes' logits.
  torch::Tensor score;
  if (needs_gradient) score = out.logits.gather(1, result.classes.view({-1, 1})).sum();

  switch (options.method) {
    case MapMethod::kPool: {
      // Without pool_include_prefix the pool saw the patches only: its weights start at them.
      auto pool_layout = layout;
      if (!config.pool_include_prefix) pool_layout.grid_start = 0;
      result.maps = attention::pool_map(out.pool_weights.detach(), pool_layout).unsqueeze(1);
      break;
    }
    case MapMethod::kRollout:
      result.maps = attention::attention_rollout(out.attentions, layout, options.fusion,
                                                 options.discard_ratio)
                        .unsqueeze(1);
      break;
    case MapMethod::kGradRollout:
    case MapMethod::kRelevance: {
      const auto gradients = torch::autograd::grad({score}, out.attentions);
      result.maps = options.method == MapMethod::kRelevance
                        ? attention::relevance(out.attentions, gradients, layout)
                        : attention::gradient_rollout(out.attentions, gradients, layout,
                                                      options.discard_ratio);
      result.maps = result.maps.unsqueeze(1);
      break;
    }
    case MapMethod::kGradCam: {
      const int64_t layer = resolve_layer(options.layer, depth);
      const auto& tokens = out.attention_inputs[layer];
      const auto gradient = torch::autograd::grad({score}, {tokens}).front();
      result.maps = attention::grad_cam(tokens, gradient, layout).unsqueeze(1);
      break;
    }
    case MapMethod::kPatch: {
      const int64_t layer = resolve_layer(options.layer, depth);
      result.maps = attention::patch_attention_map(out.attentions[layer], layout, options.cells,
                                                   options.fusion, options.head)
                        .unsqueeze(1);
      break;
    }
    case MapMethod::kPatchRollout:
      result.maps = attention::patch_rollout_map(out.attentions, layout, options.cells,
                                                 options.fusion, options.discard_ratio)
                        .unsqueeze(1);
      break;
    case MapMethod::kClassToken: {
      const int64_t heads = config.num_heads;
      std::vector<int64_t> layers;
      if (options.layer == ExplainOptions::kAll) {
        for (int64_t i = 0; i < depth; ++i) layers.push_back(i);
      } else {
        layers.push_back(resolve_layer(options.layer, depth));
      }
      if (options.head != ExplainOptions::kAll && (options.head >= heads || options.head < -1)) {
        throw std::invalid_argument("head " + std::to_string(options.head) +
                                    " out of range: the model has " + std::to_string(heads) +
                                    " heads");
      }
      std::vector<torch::Tensor> maps;
      for (const int64_t layer : layers) {
        const auto& a = out.attentions[layer];
        if (options.head == ExplainOptions::kAll) {
          for (int64_t h = 0; h < heads; ++h) {
            // One head's slice: keeping the explained tokens of every head, once per head,
            // costs heads^2 copies of the layer.
            maps.push_back(
                attention::class_token_map(a.narrow(1, h, 1), layout, options.fusion, 0));
            result.map_titles.push_back(
                (layers.size() > 1 ? "layer " + std::to_string(layer) + " " : std::string()) +
                "head " + std::to_string(h));
          }
        } else {
          maps.push_back(attention::class_token_map(a, layout, options.fusion, options.head));
          if (layers.size() > 1) result.map_titles.push_back("layer " + std::to_string(layer));
        }
      }
      result.maps = torch::stack(maps, 1);
      break;
    }
  }
  result.maps = result.maps.detach();
  return result;
}

}  // namespace

Explanation explain_vit(VisionTransformer& model, const torch::Tensor& images,
                        const ExplainOptions& options) {
  const auto& config = model->config();
  check_model_explainable(config, options);
  torch::NoGradGuard no_grad_guard;
  std::unique_ptr<torch::AutoGradMode> grad_mode;
  if (is_class_specific(options.method)) grad_mode = std::make_unique<torch::AutoGradMode>(true);
  EvalModeGuard eval_mode(*model);
  const auto out =
      model->forward_all(images, /*keep_attention=*/options.method != MapMethod::kPool,
                         /*keep_attention_inputs=*/options.method == MapMethod::kGradCam);
  return explain_pass(config, out, options);
}

ViTOutput record_attention(VisionTransformer& model, const torch::Tensor& images) {
  torch::NoGradGuard no_grad_guard;
  EvalModeGuard eval_mode(*model);
  // Under NoGradGuard nothing is recorded for autograd: the attentions are already detached.
  return model->forward_all(images, /*keep_attention=*/true, /*keep_attention_inputs=*/false);
}

Explanation explain_recorded(const ViTConfig& config, const ViTOutput& recorded,
                             const ExplainOptions& options) {
  if (is_class_specific(options.method)) {
    throw std::invalid_argument(map_method_name(options.method) +
                                " needs the gradient of a new pass: use explain_vit");
  }
  check_model_explainable(config, options);
  TORCH_CHECK(options.method == MapMethod::kPool || !recorded.attentions.empty(),
              "explain_recorded: the pass kept no attention");
  torch::NoGradGuard no_grad_guard;
  return explain_pass(config, recorded, options);
}

}  // namespace attnkit::vision
