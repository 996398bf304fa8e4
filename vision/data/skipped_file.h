// vision/data/skipped_file.h: a dataset file that could not be read, kept so the caller can say
// which files its metrics leave out.
#pragma once

#include <string>

namespace attnkit::vision {

/// One unreadable file of a dataset.
struct SkippedFile {
  std::string path;
  std::string error;  ///< the full message, "path: reason"
};

}  // namespace attnkit::vision
