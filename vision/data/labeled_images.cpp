// vision/data/labeled_images.cpp: subsets and the validation split.
#include "vision/data/labeled_images.h"

#include <torch/torch.h>

namespace attnkit::vision {

LabeledImages LabeledImages::subset(const torch::Tensor& indices) const {
  LabeledImages out;
  out.images = images.index_select(0, indices);
  out.labels = labels.index_select(0, indices);
  out.classes = classes;
  return out;
}

std::pair<LabeledImages, LabeledImages> split_validation(const LabeledImages& data, int64_t count,
                                                         uint64_t seed) {
  TORCH_CHECK(count >= 0 && count < data.size(), "split_validation: asked for ", count,
              " validation examples out of ", data.size());
  auto generator = at::detail::createCPUGenerator(seed);
  auto order = torch::randperm(data.size(), generator, torch::kLong);
  auto validation = data.subset(order.narrow(0, 0, count));
  // Training keeps the original order of its examples; shuffling happens per epoch.
  auto train = data.subset(std::get<0>(order.narrow(0, count, data.size() - count).sort()));
  train.skipped = data.skipped;
  return {train, validation};
}

}  // namespace attnkit::vision
