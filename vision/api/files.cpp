// vision/api/files.cpp: where the shipped default models are, and image files for the API.
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "vision/api/attnkit.h"
#include "vision/image/image_io.h"

namespace attnkit {

namespace fs = std::filesystem;

std::string default_model_path(const std::string& kind) {
  std::string file;
  if (kind == "classifier") {
    file = "fashion-vit.safetensors";
  } else if (kind == "captioner") {
    file = "scenes-captioner.safetensors";
  } else {
    throw std::invalid_argument("default_model_path: kind must be classifier or captioner, got '" +
                                kind + "'");
  }
  if (const char* dir = std::getenv("ATTNKIT_WEIGHTS"); dir && *dir) {
    return (fs::path(dir) / file).string();
  }
  std::error_code ec;
  std::vector<fs::path> candidates;
  // A program run from a build tree (build/apps/attn -> ../weights is not there, the source
  // tree below is) or from an installed prefix (bin/attn -> share/attnkit/weights).
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / "../weights" / file);
    candidates.push_back(exe.parent_path() / "../share/attnkit/weights" / file);
  }
  // A program of someone else's linked against an installed attnkit.
  candidates.push_back(fs::path(ATTNKIT_INSTALL_DATADIR) / "weights" / file);
  for (const auto& candidate : candidates) {
    if (fs::exists(candidate, ec)) return fs::weakly_canonical(candidate, ec).string();
  }
  return (fs::path(ATTNKIT_SOURCE_DIR) / "weights" / file).string();
}

cv::Mat load_image(const std::string& path) { return vision::load_image_rgb(path); }

void save_image(const std::string& path, const cv::Mat& rgb) { vision::save_image_rgb(path, rgb); }

}  // namespace attnkit
