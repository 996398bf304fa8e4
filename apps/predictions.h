// apps/predictions.h: a classifier's top-k for an image, and the JSON `attn classify --json` and
// `attn serve` give for it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>
#include <nlohmann/json_fwd.hpp>

#include "vision/checkpoint/model_info.h"

namespace attnkit::apps {

struct Prediction {
  int64_t index;
  std::string label;
  double probability;
};

/// The `topk` most probable classes of each image, best first, named by the model's labels.
/// probabilities (B, num_classes) -> B lists.
std::vector<std::vector<Prediction>> top_predictions(const torch::Tensor& probabilities, int topk,
                                                     const vision::ModelInfo& info);

/// [{"rank", "index", "label", "probability"}, ...]: the "predictions" of `attn classify --json`.
nlohmann::json predictions_json(const std::vector<Prediction>& predictions);

}  // namespace attnkit::apps
