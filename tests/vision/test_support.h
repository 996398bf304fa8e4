// tests/vision/test_support.h: helpers shared by the vision tests (temp dirs, raw tensors,
// running the Python oracles).
#pragma once

#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/vision/oracle_skip.h"
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

/// A tmpfs of `size` ("64k", as mount(8) reads it) on a fresh directory, unmounted with the object:
/// a disk that fills up. Mounting needs root (CAP_SYS_ADMIN); where it fails, mounted() is false
/// and error() says why, for GTEST_SKIP.
class ScopedTmpfs {
 public:
  explicit ScopedTmpfs(const std::string& size) : path_(dir_.file("tmpfs")) {
    std::filesystem::create_directory(path_);
    const std::string options = "size=" + size;
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = "cannot mount a " + size + " tmpfs (" + std::strerror(errno) + "; needs root)";
    }
  }
  ~ScopedTmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  ScopedTmpfs(const ScopedTmpfs&) = delete;
  ScopedTmpfs& operator=(const ScopedTmpfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  /// Takes every free byte with a file named `name`, so the next write fails with ENOSPC.
  void fill(const std::string& name = "filler") const {
    std::ofstream out(file(name), std::ios::binary);
    const std::string block(4096, '\0');
    while (out.write(block.data(), block.size())) {
    }
  }

 private:
  TempDir dir_;
  std::string path_;
  std::string error_;
  bool mounted_ = false;
};

/// The pid of a process that has exited and been reaped: one that certainly runs no more.
inline pid_t ended_process_id() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

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
