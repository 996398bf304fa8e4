// apps/serve/image_list.h: the images in the directories given to `attn serve`, the only files
// it ever reads for a request, and only by their index in this list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attnkit::apps {

struct ListedImage {
  std::string path;  ///< on disk
  std::string name;  ///< shown: the directory's own name, then the path inside it
  uintmax_t bytes = 0;
};

/// The still images under `directories` (recursively, links not followed), sorted by name,
/// at most `limit`. Throws std::invalid_argument naming an argument that is not a directory.
std::vector<ListedImage> list_images(const std::vector<std::string>& directories,
                                     size_t limit = 100000);

/// The HTTP content type of an image file by its extension ("image/png"; octet-stream for
/// the rest).
std::string image_content_type(const std::string& path);

}  // namespace attnkit::apps
