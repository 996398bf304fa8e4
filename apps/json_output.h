// apps/json_output.h: JSON text for --json / --jsonl output that never throws on a path.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "vision/explain/metric_summary.h"

namespace attnkit::apps {

/// `value` as JSON text (`indent` as nlohmann's dump). File names are bytes, not always UTF-8;
/// JSON text must be UTF-8, so each invalid byte is written as U+FFFD (the replacement
/// character) instead of failing the whole batch's output.
inline std::string json_text(const nlohmann::json& value, int indent = -1) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// A mean with its 95% interval, as every --json that reports one writes it:
/// {"mean", "low", "high", "count"}.
inline nlohmann::json metric_summary_json(const vision::MetricSummary& s) {
  return {{"mean", s.mean}, {"low", s.low}, {"high", s.high}, {"count", s.count}};
}

}  // namespace attnkit::apps
