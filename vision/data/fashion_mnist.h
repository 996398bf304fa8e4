// vision/data/fashion_mnist.h: Fashion-MNIST read natively from its idx files (gzip or raw).
#pragma once

#include <string>

#include <torch/types.h>

#include "vision/data/labeled_images.h"

namespace attnkit::vision {

/// Where Debian's dataset-fashion-mnist package installs the idx files.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// The ten class names, index order (Xiao et al. 2017, the dataset's README).
const std::vector<std::string>& fashion_mnist_classes();

/// Reads one idx file (LeCun's MNIST format: magic 0x0000 0x08 <ndims>, big-endian dims, uint8
/// data), gzip-compressed or not. Returns a uint8 tensor of the stored shape.
/// Throws DataError naming the file (missing, truncated, wrong magic, not uint8, trailing bytes).
torch::Tensor read_idx(const std::string& path);

/// The "train" (60,000) or "test" (10,000) split from `dir` ({train,t10k}-{images-idx3,
/// labels-idx1}-ubyte[.gz]) as (N, 1, 28, 28) uint8 images, white items on black.
LabeledImages load_fashion_mnist(const std::string& dir, const std::string& split);

}  // namespace attnkit::vision
