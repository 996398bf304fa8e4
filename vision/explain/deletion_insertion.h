// vision/explain/deletion_insertion.h: the deletion and insertion curves of a map (Petsiuk, Das
// and Saenko, "RISE", BMVC 2018): remove or reveal the map's cells from the most important down
// and follow the target class's probability.
#pragma once

#include <torch/types.h>

#include "vision/explain/perturbation.h"

namespace attnkit::vision {

struct DeletionInsertionOptions {
  /// Points along each curve after the first: cells are removed in `steps` near-equal groups
  /// (0, or more than the cells: one step per cell, as RISE with a step of one patch).
  int64_t steps = 16;
  RemovalBaseline baseline = RemovalBaseline::kBlur;
  double blur_sigma = 0.0;  ///< pixels; <= 0: RISE's 5 px per 224 px
  int64_t batch_size = 64;  ///< perturbed images per model call
};

/// Both curves for a batch of images.
struct DeletionInsertionCurves {
  torch::Tensor fractions;  ///< (S + 1) share of the cells removed (deletion) or shown (insertion)
  torch::Tensor deletion;   ///< (B, S + 1) target probability with that share removed
  torch::Tensor insertion;  ///< (B, S + 1) target probability with that share revealed
};

/// The cells' order, most important first; ties keep the cells' raster order.
/// maps (B, gh, gw) -> (B, gh * gw) cell indices.
torch::Tensor importance_order(const torch::Tensor& maps);

/// Runs both curves. images (B, C, H, W) in the model's input space, maps (B, gh, gw) whose
/// cells tile the images, targets (B) the class followed.
DeletionInsertionCurves deletion_insertion(const ProbabilityFn& model, const torch::Tensor& images,
                                           const torch::Tensor& maps, const torch::Tensor& targets,
                                           const DeletionInsertionOptions& options);

/// The area under each curve by the trapezoid rule over `fractions` (RISE's auc on its even
/// steps). curves (B, S + 1), fractions (S + 1) -> (B).
torch::Tensor curve_area(const torch::Tensor& curves, const torch::Tensor& fractions);

}  // namespace attnkit::vision
