// vision/stderr_lock.cpp: the process-wide stderr mutex.
#include "vision/stderr_lock.h"

namespace attnkit::vision {

std::unique_lock<std::mutex> lock_stderr() {
  static std::mutex mutex;
  return std::unique_lock<std::mutex>(mutex);
}

}  // namespace attnkit::vision
