// vision/models/replica_batch_norm.cpp: BatchNorm over the batch of every replica.
#include "vision/models/replica_batch_norm.h"

#include <torch/torch.h>

#include <atomic>

namespace attnkit::vision {
namespace {

std::atomic<ReplicaSum> g_replica_sum{nullptr};

}  // namespace

void set_replica_sum(ReplicaSum sum) { g_replica_sum.store(sum); }

ReplicaSum replica_sum() { return g_replica_sum.load(); }

torch::Tensor replica_batch_norm(torch::nn::BatchNorm2d& bn, const torch::Tensor& x) {
  const ReplicaSum sum = replica_sum();
  if (sum == nullptr || !bn->is_training()) return bn(x);
  TORCH_CHECK(x.dim() == 4, "replica_batch_norm: expected (B, C, H, W), got ", x.sizes());
  const auto& options = bn->options;
  const int64_t channels = x.size(1);
  const auto input = x.to(torch::kFloat);  // statistics in fp32, also under bf16 autocast
  // Two passes (mean, then the mean square deviation), as BatchNorm itself does, rather than
  // E[x^2] - E[x]^2, which cancels badly when the mean is large against the spread.
  const auto local_count =
      torch::full({1}, static_cast<double>(input.numel() / channels), input.options());
  const auto totals = sum(torch::cat({input.sum({0, 2, 3}), local_count}));
  const auto count = totals[channels];
  const auto mean = totals.narrow(0, 0, channels) / count;
  const auto centred = input - mean.view({1, channels, 1, 1});
  const auto variance = sum(centred.pow(2).sum({0, 2, 3})) / count;
  auto y = centred * torch::rsqrt(variance + options.eps()).view({1, channels, 1, 1});
  if (options.affine()) {
    y = y * bn->weight.view({1, channels, 1, 1}) + bn->bias.view({1, channels, 1, 1});
  }
  if (options.track_running_stats()) {
    torch::NoGradGuard no_grad;
    const double momentum = options.momentum().value_or(0.1);
    const double n = count.item<double>();
    bn->running_mean.mul_(1 - momentum).add_(mean.detach(), momentum);
    bn->running_var.mul_(1 - momentum)
        .add_(variance.detach() * (n / std::max(n - 1, 1.0)), momentum);
    bn->num_batches_tracked.add_(1);
  }
  return y.to(x.scalar_type());
}

}  // namespace attnkit::vision
