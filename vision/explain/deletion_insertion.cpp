// vision/explain/deletion_insertion.cpp: deletion and insertion curves, batched over the steps.
#include "vision/explain/deletion_insertion.h"

#include <torch/torch.h>

#include <cmath>

namespace attnkit::vision {

torch::Tensor importance_order(const torch::Tensor& maps) {
  TORCH_CHECK(maps.dim() == 3, "importance_order: expected maps (B, gh, gw), got ", maps.sizes());
  // The optional<bool> spells out the stable overload: a plain `true` would be taken as a dim.
  const auto values = maps.reshape({maps.size(0), -1}).to(torch::kFloat);
  return std::get<1>(values.sort(c10::optional<bool>(true), /*dim=*/1, /*descending=*/true));
}

DeletionInsertionCurves deletion_insertion(const ProbabilityFn& model, const torch::Tensor& images,
                                           const torch::Tensor& maps, const torch::Tensor& targets,
                                           const DeletionInsertionOptions& options) {
  TORCH_CHECK(images.dim() == 4 && maps.dim() == 3 && maps.size(0) == images.size(0),
              "deletion_insertion: expected images (B, C, H, W) and maps (B, gh, gw), got ",
              images.sizes(), " and ", maps.sizes());
  const int64_t batch = images.size(0), height = images.size(2), width = images.size(3);
  const int64_t cells = maps.size(1) * maps.size(2);
  const int64_t steps = options.steps <= 0 || options.steps > cells ? cells : options.steps;
  // Step s removes the first round(s * cells / steps) cells of the order.
  std::vector<int64_t> counts;
  for (int64_t s = 0; s <= steps; ++s) {
    counts.push_back(static_cast<int64_t>(std::llround(static_cast<double>(s * cells) / steps)));
  }
  DeletionInsertionCurves out;
  out.fractions = torch::tensor(counts, torch::kFloat) / static_cast<double>(cells);
  const auto order = importance_order(maps);
  // rank[b, cell] = the cell's position in the order.
  const auto rank = torch::empty_like(order).scatter_(
      1, order, torch::arange(cells, order.options()).expand_as(order).contiguous());
  const auto input = images.to(torch::kFloat);
  const auto substrate = removal_baseline_images(input, options.baseline, options.blur_sigma);
  const auto thresholds = torch::tensor(counts, torch::kLong);  // (S + 1)
  std::vector<torch::Tensor> deletion, insertion;
  for (int64_t b = 0; b < batch; ++b) {
    // removed[s, cell] for every step at once, then up to pixels: (S + 1, 1, H, W).
    const auto removed = rank[b].view({1, -1}).lt(thresholds.view({-1, 1}));
    const auto pixels = cells_to_pixels(
        removed.view({steps + 1, maps.size(1), maps.size(2)}).to(torch::kFloat), height, width);
    const auto image = input[b].unsqueeze(0);
    const auto base = substrate[b].unsqueeze(0);
    const auto deleted = image * (1 - pixels) + base * pixels;
    const auto revealed = base * (1 - pixels) + image * pixels;
    // Both curves of one image in the same model calls.
    const auto target = targets[b].expand({2 * (steps + 1)}).contiguous();
    const auto probabilities =
        target_probabilities(model, torch::cat({deleted, revealed}), target, options.batch_size);
    deletion.push_back(probabilities.narrow(0, 0, steps + 1));
    insertion.push_back(probabilities.narrow(0, steps + 1, steps + 1));
  }
  out.deletion = torch::stack(deletion);
  out.insertion = torch::stack(insertion);
  return out;
}

torch::Tensor curve_area(const torch::Tensor& curves, const torch::Tensor& fractions) {
  TORCH_CHECK(curves.dim() == 2 && fractions.dim() == 1 && curves.size(1) == fractions.size(0) &&
                  fractions.size(0) >= 2,
              "curve_area: expected curves (B, S + 1) and fractions (S + 1), S >= 1, got ",
              curves.sizes(), " and ", fractions.sizes());
  const auto widths =
      fractions.narrow(0, 1, fractions.size(0) - 1) - fractions.narrow(0, 0, fractions.size(0) - 1);
  const auto heights =
      (curves.narrow(1, 1, curves.size(1) - 1) + curves.narrow(1, 0, curves.size(1) - 1)) / 2;
  return (heights * widths.to(heights.dtype())).sum(1);
}

}  // namespace attnkit::vision
