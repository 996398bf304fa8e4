// tests/vision/test_support.h: helpers shared by the vision tests (temp dirs, raw tensors,
// running the Python oracles).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "vision/models/vit_config.h"

namespace attnkit::testing {

/// A fresh directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    auto base = std::filesystem::temp_directory_path() / "attnkit-test-XXXXXX";
    std::string pattern = base.string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// A two-block ViT (patch 8, width 24, 3 heads) small enough for unit tests.
inline vision::ViTConfig tiny_vit_config(int64_t height, int64_t width, int64_t num_classes) {
  vision::ViTConfig c;
  c.image_height = height;
  c.image_width = width;
  c.patch_size = 8;
  c.dim = 24;
  c.depth = 2;
  c.num_heads = 3;
  c.mlp_hidden_dim = 40;
  c.num_classes = num_classes;
  return c;
}

/// Reads a raw little-endian float32 file written by the oracle scripts.
inline torch::Tensor read_raw_f32(const std::string& path, std::vector<int64_t> shape) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  auto t = torch::empty(shape, torch::kFloat);
  in.read(reinterpret_cast<char*>(t.data_ptr<float>()), t.numel() * sizeof(float));
  EXPECT_EQ(in.gcount(), static_cast<std::streamsize>(t.numel() * sizeof(float))) << path;
  return t;
}

/// Runs a Python oracle script (Debian's python3 with torch) unless `done_marker` exists.
/// Returns an empty string on success, else what went wrong.
inline std::string run_oracle(const std::string& script_args, const std::string& done_marker) {
  if (std::filesystem::exists(done_marker)) return "";
  const std::string command = std::string(ATTNKIT_ORACLE_PYTHON) + " " + ATTNKIT_SOURCE_DIR +
                              "/tests/oracle/" + script_args;
  if (std::system(command.c_str()) != 0) return "oracle failed: " + command;
  if (!std::filesystem::exists(done_marker)) return "oracle wrote no " + done_marker;
  return "";
}

}  // namespace attnkit::testing
