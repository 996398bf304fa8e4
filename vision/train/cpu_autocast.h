// vision/train/cpu_autocast.h: bf16 autocast on the CPU for one scope (both trainers' forward).
#pragma once

namespace attnkit::vision {

/// Enables LibTorch's CPU autocast to bf16 for its lifetime when `enabled`; the cast cache is
/// dropped on exit so the next step never sees stale copies of updated weights.
class CpuAutocast {
 public:
  explicit CpuAutocast(bool enabled);
  ~CpuAutocast();
  CpuAutocast(const CpuAutocast&) = delete;
  CpuAutocast& operator=(const CpuAutocast&) = delete;

 private:
  bool enabled_;
};

}  // namespace attnkit::vision
