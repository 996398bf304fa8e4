// vision/models/eval_mode_guard.h: evaluation mode for a scope, the caller's mode restored after
// it, even when the scope ends in an exception.
#pragma once

#include <torch/nn/module.h>

namespace attnkit::vision {

/// Puts `module` in evaluation mode (dropout off, batch norm on its running statistics) and
/// puts it back in the mode it was in when the guard ends.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& module)
      : module_(module), was_training_(module.is_training()) {
    module_.eval();
  }
  ~EvalModeGuard() { module_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

}  // namespace attnkit::vision
