// vision/models/precision_agreement.h: how closely a reduced-precision forward pass follows the
// fp32 one: top-1 agreement, logit differences and the correlation of rollout maps.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "vision/models/inference_precision.h"
#include "vision/models/vit.h"

namespace attnkit::vision {

/// The agreement of one precision with fp32 over a set of images.
struct PrecisionAgreement {
  int64_t count = 0;
  double top1_agreement = 0;         ///< share of images whose top-1 class is the fp32 one
  double max_logit_difference = 0;   ///< max |logit - fp32 logit| over images and classes
  double mean_logit_difference = 0;  ///< mean of the same
  double logit_range = 0;            ///< max - min of the fp32 logits, to put the above in scale
  /// Median over images of the fp32 gap between the top two logits: how close the calls are.
  double median_top1_margin = 0;
  /// The largest fp32 top-two gap among the images whose top-1 class changed (0 when none did):
  /// a reduced precision that flips only near-ties shows a value near its logit error.
  double max_flipped_margin = 0;
  /// Mean and minimum Pearson correlation of each image's attention-rollout map with the fp32
  /// map (NaN when not measured).
  double mean_rollout_correlation = 0;
  double min_rollout_correlation = 0;
};

/// Runs `images` (N, C, H, W), already normalised, through `model` at fp32 and then at
/// `precision` (batches of `batch_size`) and compares. With `rollout`, the attention-rollout maps
/// too. Leaves `model` prepared for `precision`.
PrecisionAgreement measure_precision_agreement(VisionTransformer& model,
                                               const torch::Tensor& images,
                                               const InferencePrecision& precision,
                                               int64_t batch_size, bool rollout);

}  // namespace attnkit::vision
