// vision/explain/road.cpp: ROAD at each percentile, both orders.
#include "vision/explain/road.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace attnkit::vision {

torch::Tensor RoadScores::combined() const {
  return ((least_relevant_first - most_relevant_first) / 2).mean(1);
}

torch::Tensor keep_below_percentile(const torch::Tensor& pixel_map, double percentile) {
  TORCH_CHECK(pixel_map.dim() == 4 && pixel_map.size(1) == 1,
              "keep_below_percentile: expected (B, 1, H, W), got ", pixel_map.sizes());
  TORCH_CHECK(percentile >= 0 && percentile <= 100, "ROAD: percentiles must be in [0, 100], got ",
              percentile);
  const auto flat = pixel_map.reshape({pixel_map.size(0), -1}).to(torch::kDouble);
  const auto threshold = torch::quantile(flat, percentile / 100.0, /*dim=*/1, /*keepdim=*/true);
  return flat.lt(threshold).view(pixel_map.sizes());
}

RoadScores road(const ProbabilityFn& model, const torch::Tensor& images, const torch::Tensor& maps,
                const torch::Tensor& targets, const RoadOptions& options,
                const torch::Tensor& unperturbed) {
  TORCH_CHECK(images.dim() == 4 && maps.dim() == 3 && maps.size(0) == images.size(0),
              "road: expected images (B, C, H, W) and maps (B, gh, gw), got ", images.sizes(),
              " and ", maps.sizes());
  TORCH_CHECK(!options.percentiles.empty(), "ROAD: no percentiles");
  const auto input = images.to(torch::kFloat);
  const auto pixel_map = scaled_pixel_map(maps, images.size(2), images.size(3));
  const auto before = unperturbed.defined()
                          ? unperturbed
                          : target_probabilities(model, input, targets, options.batch_size);
  auto generator = at::detail::createCPUGenerator(options.seed);
  std::vector<torch::Tensor> most, least;
  for (const double p : options.percentiles) {
    const auto morf = noisy_linear_imputation(input, keep_below_percentile(pixel_map, p),
                                              options.imputation, generator);
    const auto lerf = noisy_linear_imputation(input, keep_below_percentile(1 - pixel_map, p),
                                              options.imputation, generator);
    most.push_back(target_probabilities(model, morf, targets, options.batch_size) - before);
    least.push_back(target_probabilities(model, lerf, targets, options.batch_size) - before);
  }
  return {torch::stack(most, 1), torch::stack(least, 1)};
}

}  // namespace attnkit::vision
