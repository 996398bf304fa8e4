// vision/train/cpu_autocast.cpp: the autocast switches of ATen, paired.
#include "vision/train/cpu_autocast.h"

#include <ATen/autocast_mode.h>

namespace attnkit::vision {

CpuAutocast::CpuAutocast(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_cpu_enabled(true);
  at::autocast::increment_nesting();
}

CpuAutocast::~CpuAutocast() {
  if (!enabled_) return;
  at::autocast::set_cpu_enabled(false);
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

}  // namespace attnkit::vision
