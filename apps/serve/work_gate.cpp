// apps/serve/work_gate.cpp: the worker slots and their queue.
#include "apps/serve/work_gate.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace attnkit::apps {

WorkGate::WorkGate(int workers, int queue)
    : workers_(workers), queue_(queue), busy_(static_cast<size_t>(std::max(workers, 0)), false) {
  if (workers < 1 || queue < 0) {
    throw std::invalid_argument("WorkGate: expected workers >= 1 and queue >= 0, got " +
                                std::to_string(workers) + " and " + std::to_string(queue));
  }
}

std::optional<WorkGate::Ticket> WorkGate::enter() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (running_ == workers_) {
    if (waiting_ >= queue_) return std::nullopt;
    ++waiting_;
    freed_.wait(lock, [&] { return running_ < workers_; });
    --waiting_;
  }
  int worker = 0;
  while (busy_[worker]) ++worker;
  busy_[worker] = true;
  ++running_;
  return Ticket(this, worker);
}

void WorkGate::release(int worker) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_[worker] = false;
    --running_;
  }
  freed_.notify_one();
}

WorkGate::Load WorkGate::load() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {running_, waiting_, workers_, queue_};
}

WorkGate::Ticket::Ticket(Ticket&& other) noexcept : gate_(other.gate_), worker_(other.worker_) {
  other.gate_ = nullptr;
}

WorkGate::Ticket::~Ticket() {
  if (gate_ != nullptr) gate_->release(worker_);
}

}  // namespace attnkit::apps
