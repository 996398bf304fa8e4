// vision/explain/rank_correlation.h: Spearman's rank correlation between maps, with tied values
// given their average rank, for the sanity checks of Adebayo et al. (NeurIPS 2018).
#pragma once

#include <torch/types.h>

namespace attnkit::vision {

/// Ranks 1..n of each row, ties sharing their average rank. values (B, n) -> (B, n) double.
torch::Tensor average_ranks(const torch::Tensor& values);

/// Spearman's rho of each pair of rows: the Pearson correlation of their average ranks; 0 where
/// either row is constant. a, b (B, ...) of one shape -> (B) double.
torch::Tensor spearman_correlation(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace attnkit::vision
