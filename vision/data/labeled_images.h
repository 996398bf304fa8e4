// vision/data/labeled_images.h: an in-memory image classification dataset (pixels + labels).
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "vision/data/skipped_file.h"

namespace attnkit::vision {

/// Images kept as 8-bit pixels (a quarter of float32's memory) with their class indices.
struct LabeledImages {
  torch::Tensor images;              ///< (N, C, H, W) uint8
  torch::Tensor labels;              ///< (N) int64 in [0, classes.size())
  std::vector<std::string> classes;  ///< class names, index order
  /// Files that could not be read; the rest of the dataset is still usable.
  std::vector<SkippedFile> skipped;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  /// The rows `indices` (K) as a new dataset with the same classes.
  LabeledImages subset(const torch::Tensor& indices) const;
};

/// Splits off `count` random examples (seeded, reproducible) as validation; returns
/// {train, validation}. count 0 gives an empty validation set.
std::pair<LabeledImages, LabeledImages> split_validation(const LabeledImages& data, int64_t count,
                                                         uint64_t seed);

}  // namespace attnkit::vision
