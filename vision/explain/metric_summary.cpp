// vision/explain/metric_summary.cpp: mean and normal-approximation interval.
#include "vision/explain/metric_summary.h"

#include <cmath>

namespace attnkit::vision {

MetricSummary summarize(const std::vector<double>& values) {
  MetricSummary s;
  s.count = static_cast<int64_t>(values.size());
  if (values.empty()) return s;
  double sum = 0;
  for (const double v : values) sum += v;
  s.mean = sum / static_cast<double>(s.count);
  double squares = 0;
  for (const double v : values) squares += (v - s.mean) * (v - s.mean);
  const double sd = s.count > 1 ? std::sqrt(squares / static_cast<double>(s.count - 1)) : 0.0;
  const double half = 1.96 * sd / std::sqrt(static_cast<double>(s.count));
  s.low = s.mean - half;
  s.high = s.mean + half;
  return s;
}

}  // namespace attnkit::vision
