// vision/models/vit_explain.h: runs a ViT and turns its attention into explanation maps over the
// patch grid: class-token attention, rollout, gradient rollout or relevance propagation for a
// class, Grad-CAM on a block's tokens, or the pool weights.
#pragma once

#include <string>
#include <vector>

#include "attention/attention_maps.h"
#include "vision/models/vit.h"

namespace attnkit::vision {

enum class MapMethod { kClassToken, kRollout, kGradRollout, kPool, kRelevance, kGradCam };

/// "cls" | "rollout" | "grad-rollout" | "pool" | "relevance" | "gradcam"; throws
/// std::invalid_argument naming the choices.
MapMethod map_method_from_string(const std::string& name);

/// The name map_method_from_string reads.
std::string map_method_name(MapMethod method);

/// Whether the method explains one class (needs a backward pass) rather than the attention flow.
bool is_class_specific(MapMethod method);

struct ExplainOptions {
  MapMethod method = MapMethod::kRollout;
  attention::HeadFusion fusion = attention::HeadFusion::kMean;
  /// cls: one head (>= 0), all heads as separate maps (kAll), or fused (-1).
  int64_t head = -1;
  /// cls and gradcam: the layer (>= 0, negative counts from the end: -1 = last); cls also takes
  /// every layer (kAll).
  int64_t layer = -1;
  double discard_ratio = 0.0;  ///< rollout and grad-rollout
  /// grad-rollout, relevance, gradcam: the class explained (-1 = each image's top-1).
  int64_t target_class = -1;
  /// Per image (B) classes to explain instead of target_class, when defined.
  torch::Tensor target_classes;
  static constexpr int64_t kAll = -1000;
};

/// Maps and the predictions they explain, for a batch.
struct Explanation {
  torch::Tensor probabilities;          ///< (B, num_classes)
  torch::Tensor classes;                ///< (B) the class each map explains (top-1 unless asked)
  torch::Tensor maps;                   ///< (B, K, gh, gw): K = 1, or one per head or layer
  std::vector<std::string> map_titles;  ///< K titles ("head 3", "layer 11"); empty when K = 1
};

/// Where the class, other prefix and patch tokens sit for this model and grid.
attention::TokenLayout token_layout(const ViTConfig& config, int64_t grid_height,
                                    int64_t grid_width);

/// Runs `model` on images (B, C, H, W) and computes the maps `options` ask for. Throws
/// std::invalid_argument for a method the model cannot give (pool without a map head, a head or
/// layer out of range).
Explanation explain_vit(VisionTransformer& model, const torch::Tensor& images,
                        const ExplainOptions& options);

}  // namespace attnkit::vision
