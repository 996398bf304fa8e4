// apps/serve/image_list.cpp: walks the served directories.
#include "apps/serve/image_list.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "vision/image/image_io.h"

namespace attnkit::apps {

namespace fs = std::filesystem;

std::vector<ListedImage> list_images(const std::vector<std::string>& directories, size_t limit) {
  std::vector<ListedImage> images;
  for (const auto& dir : directories) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      throw std::invalid_argument(dir +
                                  ": not a directory (attn serve lists the images in the "
                                  "directories it is given)");
    }
    const fs::path root = fs::path(dir).lexically_normal();
    const std::string shown_root =
        (root.filename().empty() ? root.parent_path() : root).filename().string();
    auto options = fs::directory_options::skip_permission_denied;
    for (auto it = fs::recursive_directory_iterator(root, options, ec);
         !ec && it != fs::recursive_directory_iterator() && images.size() < limit;
         it.increment(ec)) {
      std::error_code file_ec;
      // Links are left out: a link in a served directory could lead anywhere on the disk.
      if (it->is_symlink(file_ec) || !it->is_regular_file(file_ec) ||
          !vision::has_image_extension(it->path().string())) {
        continue;
      }
      const auto inside = it->path().lexically_relative(root).generic_string();
      images.push_back({it->path().string(), shown_root + "/" + inside, it->file_size(file_ec)});
    }
  }
  std::sort(images.begin(), images.end(),
            [](const ListedImage& a, const ListedImage& b) { return a.name < b.name; });
  return images;
}

std::string image_content_type(const std::string& path) {
  const auto ext = vision::lower_extension(path);
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".webp") return "image/webp";
  if (ext == ".bmp") return "image/bmp";
  if (ext == ".tif" || ext == ".tiff") return "image/tiff";
  return "application/octet-stream";
}

}  // namespace attnkit::apps
