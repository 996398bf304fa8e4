// vision/explain/map_evaluation.h: scores explanation methods of a ViT on a stream of images
// with the perturbation metrics (deletion / insertion, image-times-map confidence, ROAD) and a
// random-map baseline, and the cascading-randomisation sanity check.
#pragma once

#include <torch/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "vision/explain/deletion_insertion.h"
#include "vision/explain/metric_summary.h"
#include "vision/explain/road.h"
#include "vision/models/vit_explain.h"

namespace attnkit::vision {

/// A method under test: one of explain_vit's, or uniform random cells (the baseline).
struct EvaluatedMethod {
  std::string name;  ///< as printed: "rollout", "relevance", "random", ...
  bool random = false;
  ExplainOptions explain;  ///< its target classes are filled in per batch
};

/// "cls" | "rollout" | "grad-rollout" | "relevance" | "gradcam" | "pool" | "random" with the
/// default settings of each; throws std::invalid_argument naming the choices.
EvaluatedMethod evaluated_method_from_string(const std::string& name);

struct MapEvaluationOptions {
  DeletionInsertionOptions curves;
  bool confidence = true;  ///< image-times-map confidence change, drop and increase
  bool road = true;
  RoadOptions road_options;
  uint64_t seed = 0;  ///< random maps
};

/// Per-image figures of one method, in image order, keyed by metric name: "deletion_auc",
/// "insertion_auc", "confidence_change", "drop_in_confidence", "increase_in_confidence",
/// "road_morf", "road_lerf", "road_combined".
struct MethodResults {
  std::map<std::string, std::vector<double>> per_image;
  torch::Tensor deletion_curve_sum;   ///< (S + 1) summed over images
  torch::Tensor insertion_curve_sum;  ///< (S + 1)
  double map_seconds = 0;             ///< computing the maps
  double metric_seconds = 0;          ///< running the metrics
};

/// Accumulates the metrics of every method batch by batch.
class MapEvaluator {
 public:
  MapEvaluator(VisionTransformer model, std::vector<EvaluatedMethod> methods,
               MapEvaluationOptions options);

  /// images (B, C, H, W) in the model's input space; targets (B) the classes explained.
  void add(const torch::Tensor& images, const torch::Tensor& targets);

  const std::vector<EvaluatedMethod>& methods() const { return methods_; }
  const std::vector<MethodResults>& results() const { return results_; }
  torch::Tensor fractions() const { return fractions_; }  ///< (S + 1), after the first add
  int64_t count() const { return count_; }
  /// The model as the metrics see it: softmax probabilities, evaluation mode, no gradients.
  ProbabilityFn probability_fn();

 private:
  VisionTransformer model_;
  std::vector<EvaluatedMethod> methods_;
  MapEvaluationOptions options_;
  std::vector<MethodResults> results_;
  torch::Tensor fractions_;
  int64_t count_ = 0;
};

/// The maps of one method for a batch: (B, gh, gw). Random maps draw from `generator_seed`.
torch::Tensor method_maps(VisionTransformer& model, const EvaluatedMethod& method,
                          const torch::Tensor& images, const torch::Tensor& targets,
                          uint64_t generator_seed);

/// The sanity check's result: for each stage (randomization_stages, cascading), each method's
/// mean Spearman correlation between the trained model's maps and the randomised model's.
struct SanityResults {
  std::vector<std::string> stages;
  std::vector<std::string> methods;
  std::vector<std::vector<double>> correlation;  ///< [stage][method], mean over the images
  std::vector<std::vector<double>> spread;       ///< [stage][method], standard deviation
};

/// Runs the cascade on a copy of `model` (the model itself is left unchanged). Random maps are
/// skipped. `progress(done, total)` after each stage.
SanityResults sanity_check(VisionTransformer& model, const std::vector<EvaluatedMethod>& methods,
                           const torch::Tensor& images, const torch::Tensor& targets, uint64_t seed,
                           int64_t batch_size,
                           const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace attnkit::vision
