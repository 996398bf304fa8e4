// vision/models/vit_explain.h: runs a ViT and turns its attention into explanation maps over the
// patch grid: class-token attention, rollout, gradient rollout or relevance propagation for a
// class, Grad-CAM on a block's tokens, or the pool weights.
#pragma once

#include <string>
#include <vector>

#include "attention/attention_maps.h"
#include "vision/models/vit.h"

namespace attnkit::vision {

enum class MapMethod {
  kClassToken,
  kRollout,
  kGradRollout,
  kPool,
  kRelevance,
  kGradCam,
  kPatch,        ///< what one patch token attends to in one layer
  kPatchRollout  ///< that patch's row of the rolled-out attention
};

/// "cls" | "rollout" | "grad-rollout" | "pool" | "relevance" | "gradcam" | "patch" |
/// "patch-rollout"; throws
/// std::invalid_argument naming the choices.
MapMethod map_method_from_string(const std::string& name);

/// The name map_method_from_string reads.
std::string map_method_name(MapMethod method);

/// Whether the method explains one class (needs a backward pass) rather than the attention flow.
bool is_class_specific(MapMethod method);

struct ExplainOptions {
  MapMethod method = MapMethod::kRollout;
  attention::HeadFusion fusion = attention::HeadFusion::kMean;
  /// cls and patch: one head (>= 0), all heads as separate maps (kAll, cls only), or fused (-1).
  int64_t head = -1;
  /// cls, patch and gradcam: the layer (>= 0, negative counts from the end: -1 = last); cls
  /// also takes every layer (kAll).
  int64_t layer = -1;
  double discard_ratio = 0.0;  ///< rollout, grad-rollout and patch-rollout
  /// patch and patch-rollout: the query patch, one for every image or one per image (B).
  std::vector<attention::GridCell> cells;
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
/// layer out of range) and std::out_of_range for a patch cell off the grid.
Explanation explain_vit(VisionTransformer& model, const torch::Tensor& images,
                        const ExplainOptions& options);

/// The forward pass explain_vit runs for the methods that need no gradient, kept (detached) so
/// that many maps can be read from one pass: every block's attention and the pool weights.
ViTOutput record_attention(VisionTransformer& model, const torch::Tensor& images);

/// The maps of a recorded pass, computed exactly as explain_vit computes them. Throws
/// std::invalid_argument for a class-specific method (it needs the gradient: use explain_vit)
/// and as explain_vit does.
Explanation explain_recorded(const ViTConfig& config, const ViTOutput& recorded,
                             const ExplainOptions& options);

}  // namespace attnkit::vision
