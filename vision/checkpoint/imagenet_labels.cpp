// vision/checkpoint/imagenet_labels.cpp: splits the compiled-in class list into names.
#include "vision/checkpoint/imagenet_labels.h"

#include <sstream>

namespace attnkit::vision {
namespace detail {
extern const char kImagenetClasses[];
}

const std::vector<std::string>& imagenet1k_labels() {
  static const std::vector<std::string> labels = [] {
    std::vector<std::string> names;
    std::istringstream lines(detail::kImagenetClasses);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) names.push_back(line);
    }
    return names;
  }();
  return labels;
}

}  // namespace attnkit::vision
