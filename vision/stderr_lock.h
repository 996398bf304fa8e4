// vision/stderr_lock.h: one lock for everything attnkit writes to stderr, because image decoding
// points fd 2 at /dev/null for a moment (to keep libpng's and libjpeg's own chatter away).
#pragma once

#include <mutex>

namespace attnkit::vision {

/// Held by image decoding while fd 2 is pointed at /dev/null. Anything that writes to stderr
/// while another thread may be decoding (a reader thread prefetching the next batch) takes it
/// too, so its line waits for the decoder instead of going to /dev/null.
std::unique_lock<std::mutex> lock_stderr();

}  // namespace attnkit::vision
