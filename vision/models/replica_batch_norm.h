// vision/models/replica_batch_norm.h: BatchNorm whose batch statistics cover every data-parallel
// replica's part of the batch (synchronised BatchNorm), so N processes train the model one
// process would on the whole batch.
#pragma once

#include <torch/nn/modules/batchnorm.h>

namespace attnkit::vision {

/// Sums a tensor over the replicas, differentiably (the backward sums the gradients over the
/// replicas too).
using ReplicaSum = torch::Tensor (*)(const torch::Tensor&);

/// Installs the process-wide replica sum (nullptr: training on one process). The data-parallel
/// group (vision/train/data_parallel.h) installs it while it lives.
void set_replica_sum(ReplicaSum sum);
/// The installed replica sum, or nullptr.
ReplicaSum replica_sum();

/// `bn` applied to x (B, C, H, W): in training mode with a replica sum installed, the mean and
/// the (biased) variance are those of the batch over all replicas, computed in two passes, and
/// the running statistics are updated with them as BatchNorm2d would (unbiased variance);
/// otherwise bn(x) itself.
torch::Tensor replica_batch_norm(torch::nn::BatchNorm2d& bn, const torch::Tensor& x);

}  // namespace attnkit::vision
