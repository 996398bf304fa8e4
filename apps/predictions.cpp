// apps/predictions.cpp: top-k classes and their JSON.
#include "apps/predictions.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

namespace attnkit::apps {

std::vector<std::vector<Prediction>> top_predictions(const torch::Tensor& probabilities, int topk,
                                                     const vision::ModelInfo& info) {
  auto [values, indices] = probabilities.to(torch::kFloat).topk(topk, 1);
  const auto values_a = values.accessor<float, 2>();
  const auto indices_a = indices.accessor<int64_t, 2>();
  std::vector<std::vector<Prediction>> out(static_cast<size_t>(probabilities.size(0)));
  for (int64_t b = 0; b < probabilities.size(0); ++b) {
    for (int k = 0; k < topk; ++k) {
      out[b].push_back({indices_a[b][k], vision::class_label(info, indices_a[b][k]),
                        static_cast<double>(values_a[b][k])});
    }
  }
  return out;
}

nlohmann::json predictions_json(const std::vector<Prediction>& predictions) {
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < predictions.size(); ++i) {
    list.push_back({{"rank", i + 1},
                    {"index", predictions[i].index},
                    {"label", predictions[i].label},
                    {"probability", predictions[i].probability}});
  }
  return list;
}

}  // namespace attnkit::apps
