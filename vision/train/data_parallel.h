// vision/train/data_parallel.h: data-parallel training over processes on one or many hosts,
// on PyTorch's c10d (a TCPStore for the rendezvous, ProcessGroupGloo for CPU collectives).
#pragma once

#include <torch/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace attnkit::vision {

/// Where this process stands in a data-parallel run (torchrun's variables).
struct DataParallelOptions {
  int rank = 0;                           ///< RANK: 0 .. world_size-1; rank 0 serves the store
  int world_size = 1;                     ///< WORLD_SIZE
  int local_rank = 0;                     ///< LOCAL_RANK: the rank on this host
  std::string master_addr = "127.0.0.1";  ///< MASTER_ADDR: rank 0's host
  int master_port = 29500;                ///< MASTER_PORT
  /// How long the rendezvous and every collective may wait for the other processes.
  std::chrono::seconds timeout{120};
};

/// The run described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
/// MASTER_PORT), or nothing when WORLD_SIZE is unset. Throws DistributedError naming a variable
/// that is set but malformed or out of range.
std::optional<DataParallelOptions> data_parallel_from_environment();

/// One process's membership of a data-parallel group. Every rank runs the same steps on its own
/// part of each global batch; gradients are averaged over the ranks before each optimizer step,
/// so the weights stay equal on every rank. One per process: while it lives, BatchNorm layers in
/// training mode normalise with the statistics of the global batch
/// (vision/models/replica_batch_norm.h). Collectives that fail (a process died, the timeout
/// passed) throw DistributedError.
class DataParallel {
 public:
  /// Joins the group: rank 0 serves the store at master_addr:master_port, the others connect to
  /// it. Throws DistributedError naming the address when the rendezvous fails.
  explicit DataParallel(const DataParallelOptions& options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const;
  int world_size() const;
  /// Rank 0: the one that writes checkpoints and logs.
  bool is_main() const { return rank() == 0; }
  /// "rank 1 of 2"
  std::string describe() const;

  /// Sums `tensor` over the ranks, in place (every rank gets the sum).
  void sum_(torch::Tensor& tensor);
  /// Sums each of `values` over the ranks (figures: counts, losses); every rank gets the sums.
  /// Also a barrier: it returns once every rank has called it.
  std::vector<double> sum(std::vector<double> values);
  /// Copies rank 0's values of `tensors` into every rank's.
  void broadcast_(std::vector<torch::Tensor> tensors);

  /// Makes `module` one replica of the group: rank 0's parameters and buffers are copied to
  /// every rank, and the gradients of its trainable parameters are averaged from now on
  /// (attach_gradient_hooks). Once per group; later calls do nothing.
  void replicate(torch::nn::Module& module);

  /// Averages the gradients of `parameters` over the ranks from now on: hooks copy each
  /// gradient into a bucket of about `bucket_bytes` as backward produces it, and a full bucket is
  /// all-reduced while backward goes on (buckets are reduced in the same order on every rank).
  void attach_gradient_hooks(const std::vector<torch::Tensor>& parameters,
                             size_t bucket_bytes = size_t{1} << 20);
  /// After backward: reduces the buckets still open (a parameter that got no gradient counts
  /// as zero), waits for all of them and writes the averages into the parameters' .grad.
  void finish_gradients();
  /// Seconds finish_gradients() spent waiting for gradient all-reduces since the last call (the
  /// communication backward did not hide), and the steps it covers; both reset.
  std::pair<double, int64_t> take_gradient_wait();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the gradient hooks, which outlive no group
};

}  // namespace attnkit::vision
