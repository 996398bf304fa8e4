// apps/json_output.h: JSON text for --json / --jsonl output that never throws on a path.
#pragma once

#include <string>

#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "vision/explain/metric_summary.h"

namespace attnkit::apps {

/// `value` as JSON text (`indent` as nlohmann's dump). File names are bytes, not always UTF-8;
/// JSON text must be UTF-8, so each invalid byte is written as U+FFFD (the replacement
/// character) instead of failing the whole batch's output.
inline std::string json_text(const nlohmann::json& value, int indent = -1) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// A 2-d tensor (rows, columns) as nested JSON arrays of T (int64_t for counts, float for maps).
template <class T>
nlohmann::json matrix_json(const torch::Tensor& matrix) {
  const auto values = matrix.contiguous();
  const auto a = values.accessor<T, 2>();
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t r = 0; r < values.size(0); ++r) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t c = 0; c < values.size(1); ++c) row.push_back(a[r][c]);
    rows.push_back(row);
  }
  return rows;
}

/// A mean with its 95% interval, as every --json that reports one writes it:
/// {"mean", "low", "high", "count"}.
inline nlohmann::json metric_summary_json(const vision::MetricSummary& s) {
  return {{"mean", s.mean}, {"low", s.low}, {"high", s.high}, {"count", s.count}};
}

}  // namespace attnkit::apps
