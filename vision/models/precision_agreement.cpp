// vision/models/precision_agreement.cpp: fp32 against one reduced precision, image by image.
#include "vision/models/precision_agreement.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "vision/models/vit_explain.h"

namespace attnkit::vision {
namespace {

struct Outputs {
  torch::Tensor logits;  ///< (N, classes)
  torch::Tensor maps;    ///< (N, gh * gw) rollout maps, or undefined
};

Outputs run_all(VisionTransformer& model, const torch::Tensor& images, int64_t batch_size,
                bool rollout) {
  std::vector<torch::Tensor> logits, maps;
  ExplainOptions options;
  options.method = MapMethod::kRollout;
  for (int64_t start = 0; start < images.size(0); start += batch_size) {
    auto batch = images.narrow(0, start, std::min(batch_size, images.size(0) - start));
    logits.push_back(model->forward(batch));
    if (rollout) maps.push_back(explain_vit(model, batch, options).maps.flatten(1));
  }
  return {torch::cat(logits), rollout ? torch::cat(maps) : torch::Tensor()};
}

/// Pearson correlation of each row of a with the same row of b: (N, K), (N, K) -> (N).
torch::Tensor row_correlation(const torch::Tensor& a, const torch::Tensor& b) {
  auto ac = a - a.mean(1, true);
  auto bc = b - b.mean(1, true);
  return (ac * bc).sum(1) / (ac.norm(2, 1) * bc.norm(2, 1)).clamp_min(1e-30);
}

}  // namespace

PrecisionAgreement measure_precision_agreement(VisionTransformer& model,
                                               const torch::Tensor& images,
                                               const InferencePrecision& precision,
                                               int64_t batch_size, bool rollout) {
  TORCH_CHECK(images.dim() == 4 && images.size(0) > 0,
              "measure_precision_agreement: expected images (N, C, H, W) with N > 0, got ",
              images.sizes());
  TORCH_CHECK(batch_size > 0, "measure_precision_agreement: batch_size must be positive, got ",
              batch_size);
  torch::NoGradGuard no_grad;
  model->eval();
  apply_inference_precision(*model, InferencePrecision{});
  const auto reference = run_all(model, images, batch_size, rollout);
  apply_inference_precision(*model, precision);
  const auto candidate = run_all(model, images, batch_size, rollout);

  PrecisionAgreement a;
  a.count = images.size(0);
  auto same = reference.logits.argmax(1).eq(candidate.logits.argmax(1));
  a.top1_agreement = same.to(torch::kDouble).mean().item<double>();
  auto difference = (candidate.logits - reference.logits).abs();
  a.max_logit_difference = difference.max().item<double>();
  a.mean_logit_difference = difference.mean().item<double>();
  a.logit_range = (reference.logits.max() - reference.logits.min()).item<double>();
  if (reference.logits.size(1) >= 2) {
    const auto top2 = std::get<0>(reference.logits.topk(2, 1));
    const auto margin = (top2.select(1, 0) - top2.select(1, 1)).to(torch::kDouble);
    a.median_top1_margin = margin.median().item<double>();
    const auto flipped = margin.masked_select(same.logical_not());
    a.max_flipped_margin = flipped.numel() ? flipped.max().item<double>() : 0.0;
  }
  a.mean_rollout_correlation = a.min_rollout_correlation = std::numeric_limits<double>::quiet_NaN();
  if (rollout) {
    auto r = row_correlation(reference.maps.to(torch::kDouble), candidate.maps.to(torch::kDouble));
    a.mean_rollout_correlation = r.mean().item<double>();
    a.min_rollout_correlation = r.min().item<double>();
  }
  return a;
}

}  // namespace attnkit::vision
