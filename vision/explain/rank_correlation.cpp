// vision/explain/rank_correlation.cpp: average ranks and Spearman's rho.
#include "vision/explain/rank_correlation.h"

#include <torch/torch.h>

namespace attnkit::vision {

torch::Tensor average_ranks(const torch::Tensor& values) {
  TORCH_CHECK(values.dim() == 2, "average_ranks: expected (B, n), got ", values.sizes());
  const auto v = values.to(torch::kDouble).contiguous();
  const auto order =
      std::get<1>(v.sort(c10::optional<bool>(true), /*dim=*/1, /*descending=*/false));
  auto ranks = torch::empty_like(v);
  auto value = v.accessor<double, 2>();
  auto index = order.accessor<int64_t, 2>();
  auto rank = ranks.accessor<double, 2>();
  const int64_t n = v.size(1);
  for (int64_t b = 0; b < v.size(0); ++b) {
    for (int64_t start = 0; start < n;) {
      int64_t end = start + 1;
      while (end < n && value[b][index[b][end]] == value[b][index[b][start]]) ++end;
      const double shared = 0.5 * static_cast<double>(start + 1 + end);  // mean of start+1..end
      for (int64_t k = start; k < end; ++k) rank[b][index[b][k]] = shared;
      start = end;
    }
  }
  return ranks;
}

torch::Tensor spearman_correlation(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.sizes() == b.sizes() && a.dim() >= 2,
              "spearman_correlation: expected two (B, ...) tensors of one shape, got ", a.sizes(),
              " and ", b.sizes());
  const auto ra = average_ranks(a.reshape({a.size(0), -1}));
  const auto rb = average_ranks(b.reshape({b.size(0), -1}));
  const auto ca = ra - ra.mean(1, true);
  const auto cb = rb - rb.mean(1, true);
  const auto denominator = (ca.pow(2).sum(1) * cb.pow(2).sum(1)).sqrt();
  return torch::where(denominator.gt(0), (ca * cb).sum(1) / denominator.clamp_min(1e-300),
                      torch::zeros_like(denominator));
}

}  // namespace attnkit::vision
