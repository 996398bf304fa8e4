// vision/explain/metric_summary.h: a figure over a set of images or words: its mean and a 95%
// interval.
#pragma once

#include <cstdint>
#include <vector>

namespace attnkit::vision {

/// Mean and a 95% interval, mean -/+ 1.96 standard errors (the normal approximation; the sample
/// standard deviation with n - 1).
struct MetricSummary {
  double mean = 0, low = 0, high = 0;
  int64_t count = 0;
};

MetricSummary summarize(const std::vector<double>& values);

}  // namespace attnkit::vision
