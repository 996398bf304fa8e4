// vision/explain/road.h: ROAD, remove and debias (Rong et al., ICML 2022), as pytorch-grad-cam runs
// it on a map: at each percentile p, the most relevant pixels (map >= its p-th percentile: the top
// 100 - p %) or the least relevant (the bottom 100 - p %) are imputed by noisy linear imputation,
// and the change in the target probability is recorded.
#pragma once

#include <torch/types.h>

#include <vector>

#include "vision/explain/noisy_linear_imputation.h"
#include "vision/explain/perturbation.h"

namespace attnkit::vision {

struct RoadOptions {
  /// pytorch-grad-cam's ROAD*Average and ROADCombined percentiles.
  std::vector<double> percentiles = {10, 20, 30, 40, 50, 60, 70, 80, 90};
  ImputationOptions imputation;
  int64_t batch_size = 64;
  uint64_t seed = 0;  ///< the imputation noise
};

struct RoadScores {
  /// (B, P): target probability after - before, most relevant first (lower: a better map).
  torch::Tensor most_relevant_first;
  /// (B, P): the same, least relevant first (higher: a better map).
  torch::Tensor least_relevant_first;
  /// (B): pytorch-grad-cam's ROADCombined, the mean over percentiles of (LeRF - MoRF) / 2.
  torch::Tensor combined() const;
};

/// Which pixels stay, as pytorch-grad-cam's RemoveMostRelevantFirst: pixel_map < the map's
/// `percentile`-th percentile (linear interpolation, as numpy.percentile). For least relevant
/// first it is given 1 - pixel_map. pixel_map (B, 1, H, W) -> keep (B, 1, H, W) bool.
torch::Tensor keep_below_percentile(const torch::Tensor& pixel_map, double percentile);

/// images (B, C, H, W), maps (B, gh, gw) (upsampled as scaled_pixel_map), targets (B).
/// `unperturbed` (B), the target probabilities of the untouched images, when the caller has them.
RoadScores road(const ProbabilityFn& model, const torch::Tensor& images, const torch::Tensor& maps,
                const torch::Tensor& targets, const RoadOptions& options,
                const torch::Tensor& unperturbed = {});

}  // namespace attnkit::vision
