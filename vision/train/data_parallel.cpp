// vision/train/data_parallel.cpp: the c10d group, gradient buckets and the replica sum.
#include "vision/train/data_parallel.h"

#include <torch/torch.h>

#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "vision/errors.h"
#include "vision/models/replica_batch_norm.h"

namespace attnkit::vision {
namespace {

// Reads an integer variable of torchrun's environment; nothing when unset.
std::optional<long> integer_variable(const char* name, long low, long high) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < low || value > high) {
    throw DistributedError(std::string("$") + name + "=" + text +
                           ": expected a whole number from " + std::to_string(low) + " to " +
                           std::to_string(high));
  }
  return value;
}

// The group of this process, for the replica sum's autograd function (one group per process).
c10::intrusive_ptr<c10d::ProcessGroupGloo> g_group;
std::mutex g_group_mutex;

c10::intrusive_ptr<c10d::ProcessGroupGloo> current_group() {
  std::lock_guard<std::mutex> lock(g_group_mutex);
  return g_group;
}

// Runs a collective and waits for it; c10d's errors (a peer's socket closed, a timeout) become
// DistributedError with what was being done.
void wait_for(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what,
              const std::string& who) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw DistributedError("data-parallel training: " + who + ": " + what +
                           " failed: another process has died or stopped answering (" +
                           std::string(e.what()).substr(0, 300) + ")");
  }
}

void all_reduce_sum(const c10::intrusive_ptr<c10d::ProcessGroupGloo>& group, torch::Tensor& t,
                    const std::string& what) {
  std::vector<torch::Tensor> tensors{t};
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = group->allreduce(tensors);
  } catch (const std::exception& e) {
    throw DistributedError(std::string("data-parallel training: ") + what + " failed (" + e.what() +
                           ")");
  }
  wait_for(work, what,
           "rank " + std::to_string(group->getRank()) + " of " + std::to_string(group->getSize()));
}

// Sum over the replicas whose backward is the sum of the gradients over the replicas: the
// gradient of sum_k L_k with respect to each replica's input.
class ReplicaSumFunction : public torch::autograd::Function<ReplicaSumFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x) {
    auto total = x.detach().clone().contiguous();
    all_reduce_sum(current_group(), total, "the batch statistics' sum");
    return total;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grads) {
    auto total = grads[0].contiguous().clone();
    all_reduce_sum(current_group(), total, "the batch statistics' gradient sum");
    return {total};
  }
};

torch::Tensor replica_sum_function(const torch::Tensor& x) { return ReplicaSumFunction::apply(x); }

}  // namespace

std::optional<DataParallelOptions> data_parallel_from_environment() {
  const auto world = integer_variable("WORLD_SIZE", 1, 65536);
  if (!world) return std::nullopt;
  DataParallelOptions o;
  o.world_size = static_cast<int>(*world);
  const auto rank = integer_variable("RANK", 0, o.world_size - 1);
  if (!rank) throw DistributedError("$WORLD_SIZE is set but $RANK is not");
  o.rank = static_cast<int>(*rank);
  o.local_rank = static_cast<int>(integer_variable("LOCAL_RANK", 0, 65535).value_or(0));
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') {
    o.master_addr = addr;
  }
  o.master_port = static_cast<int>(integer_variable("MASTER_PORT", 1, 65535).value_or(29500));
  return o;
}

struct DataParallel::Impl {
  DataParallelOptions options;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;

  struct Bucket {
    std::vector<size_t> members;  // parameter indices
    std::vector<int64_t> offsets;
    torch::Tensor flat;  // the gradients, concatenated
    size_t pending = 0;
    bool ready = false;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<torch::Tensor> parameters;
  std::vector<size_t> bucket_of, slot_of;
  std::vector<bool> received;
  std::vector<Bucket> buckets;
  size_t next_to_launch = 0;
  double wait_seconds = 0;
  int64_t waited_steps = 0;

  std::string who() const {
    return "rank " + std::to_string(options.rank) + " of " + std::to_string(options.world_size);
  }

  // Buckets go out in order, so every rank issues the same collectives in the same sequence.
  void launch_ready_buckets() {
    while (next_to_launch < buckets.size() && buckets[next_to_launch].ready) {
      std::vector<torch::Tensor> tensors{buckets[next_to_launch].flat};
      buckets[next_to_launch].work = group->allreduce(tensors);
      ++next_to_launch;
    }
  }

  void on_gradient(size_t index, const torch::Tensor& grad) {
    Bucket& bucket = buckets[bucket_of[index]];
    const auto& p = parameters[index];
    auto slice = bucket.flat.narrow(0, bucket.offsets[slot_of[index]], p.numel());
    if (received[index]) {  // a second gradient for the same parameter: they add up
      slice.add_(grad.reshape(-1));
    } else {
      slice.copy_(grad.reshape(-1));
    }
    if (!received[index]) {
      received[index] = true;
      if (--bucket.pending == 0) {
        bucket.ready = true;
        launch_ready_buckets();
      }
    }
  }
};

DataParallel::DataParallel(const DataParallelOptions& options) : impl_(std::make_shared<Impl>()) {
  impl_->options = options;
  const std::string address = options.master_addr + ":" + std::to_string(options.master_port);
  {
    std::lock_guard<std::mutex> lock(g_group_mutex);
    TORCH_CHECK(!g_group, "DataParallel: this process already has a group");
  }
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(options.master_port);
    // Under torchrun the agent already serves a store at MASTER_ADDR:MASTER_PORT and says so:
    // every rank is then its client, under a prefix of its own, as torch.distributed does.
    const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    const bool use_agent_store = agent_store != nullptr && std::string(agent_store) == "True";
    store_options.isServer = options.rank == 0 && !use_agent_store;
    store_options.numWorkers = options.world_size;
    store_options.waitWorkers = !use_agent_store;
    store_options.timeout = options.timeout;
    auto tcp_store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, store_options);
    impl_->store = use_agent_store
                       ? c10::intrusive_ptr<c10d::Store>(
                             c10::make_intrusive<c10d::PrefixStore>("/worker/attnkit", tcp_store))
                       : c10::intrusive_ptr<c10d::Store>(tcp_store);
  } catch (const std::exception& e) {
    const std::string reason = std::string(e.what()).substr(0, 300);
    throw DistributedError(
        options.rank == 0
            ? "data-parallel training: rank 0 cannot serve the rendezvous at " + address +
                  " (MASTER_ADDR:MASTER_PORT), or the other " +
                  std::to_string(options.world_size - 1) + " process(es) did not join within " +
                  std::to_string(options.timeout.count()) + " s: " + reason
            : "data-parallel training: " + impl_->who() + " cannot reach the master at " + address +
                  " (MASTER_ADDR:MASTER_PORT) within " + std::to_string(options.timeout.count()) +
                  " s: " + reason);
  }
  try {
    auto group_options = c10d::ProcessGroupGloo::Options::create();
    // $GLOO_SOCKET_IFNAME names the interface, as for torch.distributed; else loopback for a
    // one-host run, and the interface this host's name resolves to for several hosts.
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    group_options->devices.push_back(
        interface != nullptr && *interface != '\0'
            ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
        : options.master_addr == "127.0.0.1" || options.master_addr == "localhost"
            ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
            : c10d::ProcessGroupGloo::createDefaultDevice());
    group_options->timeout = options.timeout;
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, options.rank,
                                                               options.world_size, group_options);
  } catch (const std::exception& e) {
    throw DistributedError("data-parallel training: " + impl_->who() +
                           " cannot connect to the other processes (rendezvous at " + address +
                           "): " + std::string(e.what()).substr(0, 300));
  }
  {
    std::lock_guard<std::mutex> lock(g_group_mutex);
    g_group = impl_->group;
  }
  if (options.world_size > 1) set_replica_sum(&replica_sum_function);
}

DataParallel::~DataParallel() {
  set_replica_sum(nullptr);
  std::lock_guard<std::mutex> lock(g_group_mutex);
  g_group.reset();
}

int DataParallel::rank() const { return impl_->options.rank; }
int DataParallel::world_size() const { return impl_->options.world_size; }
std::string DataParallel::describe() const { return impl_->who(); }

void DataParallel::sum_(torch::Tensor& tensor) {
  TORCH_CHECK(tensor.is_contiguous(), "DataParallel::sum_: expected a contiguous tensor");
  all_reduce_sum(impl_->group, tensor, "an all-reduce");
}

std::vector<double> DataParallel::sum(std::vector<double> values) {
  auto t = torch::tensor(values, torch::kDouble);
  sum_(t);
  const auto sums = t.accessor<double, 1>();
  for (size_t i = 0; i < values.size(); ++i) values[i] = sums[static_cast<int64_t>(i)];
  return values;
}

void DataParallel::broadcast_(std::vector<torch::Tensor> tensors) {
  for (auto& t : tensors) {
    torch::NoGradGuard no_grad;
    auto contiguous = t.detach().contiguous();
    std::vector<torch::Tensor> one{contiguous};
    wait_for(impl_->group->broadcast(one), "the broadcast of rank 0's weights", impl_->who());
    if (!contiguous.is_same(t)) t.detach().copy_(contiguous);
  }
}

void DataParallel::replicate(torch::nn::Module& module) {
  if (!impl_->parameters.empty()) return;
  // The same starting point everywhere, then gradients averaged as backward produces them.
  auto tensors = module.parameters();
  for (const auto& buffer : module.buffers()) tensors.push_back(buffer);
  broadcast_(tensors);
  std::vector<torch::Tensor> trainable;
  for (const auto& p : module.parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  attach_gradient_hooks(trainable);
}

void DataParallel::attach_gradient_hooks(const std::vector<torch::Tensor>& parameters,
                                         size_t bucket_bytes) {
  auto& impl = *impl_;
  TORCH_CHECK(impl.parameters.empty(), "DataParallel: gradient hooks are already attached");
  impl.parameters = parameters;
  impl.bucket_of.assign(parameters.size(), 0);
  impl.slot_of.assign(parameters.size(), 0);
  impl.received.assign(parameters.size(), false);
  // Backward produces the last layers' gradients first: buckets fill from the end.
  size_t bytes = bucket_bytes;
  for (size_t k = parameters.size(); k-- > 0;) {
    if (bytes >= bucket_bytes) {
      impl.buckets.emplace_back();
      bytes = 0;
    }
    auto& bucket = impl.buckets.back();
    impl.bucket_of[k] = impl.buckets.size() - 1;
    impl.slot_of[k] = bucket.members.size();
    bucket.offsets.push_back(
        bucket.members.empty() ? 0
                               : bucket.offsets.back() + parameters[bucket.members.back()].numel());
    bucket.members.push_back(k);
    bytes += static_cast<size_t>(parameters[k].numel()) * sizeof(float);
  }
  for (auto& bucket : impl.buckets) {
    int64_t total = 0;
    for (size_t m : bucket.members) total += parameters[m].numel();
    bucket.flat = torch::zeros({total}, torch::kFloat);
    bucket.pending = bucket.members.size();
  }
  for (size_t k = 0; k < parameters.size(); ++k) {
    TORCH_CHECK(parameters[k].scalar_type() == torch::kFloat,
                "DataParallel: expected fp32 parameters, got ", parameters[k].scalar_type());
    auto parameter = parameters[k];
    // The hooks stay on the parameters: once this group is gone they do nothing.
    std::weak_ptr<Impl> weak = impl_;
    parameter.register_hook([weak, k](const torch::Tensor& grad) {
      if (auto impl = weak.lock()) impl->on_gradient(k, grad);
      return grad;
    });
  }
}

void DataParallel::finish_gradients() {
  auto& impl = *impl_;
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < impl.buckets.size(); ++b) {  // parameters that got no gradient: zeros
    auto& bucket = impl.buckets[b];
    if (bucket.ready) continue;
    for (size_t slot = 0; slot < bucket.members.size(); ++slot) {
      const size_t k = bucket.members[slot];
      if (impl.received[k]) continue;
      bucket.flat.narrow(0, bucket.offsets[slot], impl.parameters[k].numel()).zero_();
      impl.received[k] = true;
    }
    bucket.pending = 0;
    bucket.ready = true;
  }
  impl.launch_ready_buckets();
  const double scale = 1.0 / impl.options.world_size;
  const auto wait_start = std::chrono::steady_clock::now();
  for (auto& bucket : impl.buckets) {
    wait_for(bucket.work, "the gradient all-reduce", impl.who());
  }
  impl.wait_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start).count();
  ++impl.waited_steps;
  for (auto& bucket : impl.buckets) {
    bucket.flat.mul_(scale);
    for (size_t slot = 0; slot < bucket.members.size(); ++slot) {
      auto& p = impl.parameters[bucket.members[slot]];
      auto average = bucket.flat.narrow(0, bucket.offsets[slot], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(average);
      } else {
        p.mutable_grad() = average.clone();
      }
    }
    bucket.work.reset();
    bucket.ready = false;
    bucket.pending = bucket.members.size();
  }
  std::fill(impl.received.begin(), impl.received.end(), false);
  impl.next_to_launch = 0;
}

std::pair<double, int64_t> DataParallel::take_gradient_wait() {
  const std::pair<double, int64_t> taken{impl_->wait_seconds, impl_->waited_steps};
  impl_->wait_seconds = 0;
  impl_->waited_steps = 0;
  return taken;
}

}  // namespace attnkit::vision
