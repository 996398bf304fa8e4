// apps/serve/work_gate.h: admission for model work in `attn serve`: a fixed number of workers
// and a bounded queue in front of them; work beyond both is refused (503), never queued
// without end.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

namespace attnkit::apps {

class WorkGate {
 public:
  /// `workers` run at once (>= 1); up to `queue` more wait (>= 0).
  WorkGate(int workers, int queue);

  /// Holds a worker until destroyed; `worker()` says which (0 .. workers-1), so each worker
  /// can own its own copy of the models.
  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept;
    Ticket& operator=(Ticket&&) = delete;
    Ticket(const Ticket&) = delete;
    ~Ticket();
    int worker() const { return worker_; }

   private:
    friend class WorkGate;
    Ticket(WorkGate* gate, int worker) : gate_(gate), worker_(worker) {}
    WorkGate* gate_;
    int worker_;
  };

  /// A worker, after waiting in the queue while all are busy; nullopt at once when the
  /// workers are busy and the queue is full.
  std::optional<Ticket> enter();

  struct Load {
    int running = 0;
    int waiting = 0;
    int workers = 0;
    int queue = 0;
  };
  Load load() const;

 private:
  void release(int worker);

  const int workers_;
  const int queue_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<bool> busy_;
  int running_ = 0;
  int waiting_ = 0;
};

}  // namespace attnkit::apps
