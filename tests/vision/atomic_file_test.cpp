// tests/vision/atomic_file_test.cpp: the one writer of every output file: atomic replacement,
// errors naming the file and errno, stale temporaries, and a full disk (a small tmpfs) leaving
// the previous file intact and no temporary.
#include "vision/atomic_file.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <opencv2/core.hpp>

#include "tests/vision/test_support.h"
#include "vision/checkpoint/safetensors.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"

namespace attnkit::vision {
namespace {

namespace fs = std::filesystem;
using attnkit::testing::TempDir;

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const std::string& path, const std::string& text) {
  write_atomically(path, text.data(), text.size());
}

// Runs `action`, which must throw T (WriteError, or the type a thin caller converts it to)
// mentioning every one of `parts`.
template <typename T = WriteError, typename F>
void expect_write_error(F action, const std::vector<std::string>& parts) {
  try {
    action();
    ADD_FAILURE() << "nothing thrown";
  } catch (const T& e) {
    for (const auto& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "\"" << e.what() << "\" lacks \"" << part << "\"";
    }
  }
}

TEST(AtomicFile, ReplacesTheTargetOnlyOnCommit) {
  TempDir dir;
  const auto path = dir.file("out.bin");
  write_text(path, "old");
  {
    AtomicFile abandoned(path, /*keep_extension=*/true);
    EXPECT_EQ(fs::path(abandoned.temp_path()).extension(), ".bin");
    abandoned.write("new", 3);
  }  // destroyed without commit, as when an exception passes
  EXPECT_EQ(read_file(path), "old");
  EXPECT_EQ(listing(dir.path()), std::vector<std::string>{"out.bin"});
  {
    AtomicFile file(path);
    file.write("ab", 2);
    file.write("", 0);
    file.write("cd", 2);
    EXPECT_EQ(read_file(path), "old");  // readers still see the previous file
    EXPECT_EQ(fs::path(file.temp_path()).parent_path(), dir.path());
    EXPECT_EQ(fs::path(file.temp_path()).filename().string().rfind(".out.bin.tmp-", 0), 0u);
    file.commit();
  }
  EXPECT_EQ(read_file(path), "abcd");
  EXPECT_EQ(listing(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFile, ErrorsNameTheTargetAndTheReason) {
  TempDir dir;
  const auto missing = dir.file("no/such/out.png");
  expect_write_error([&] { write_text(missing, "x"); },
                     {missing + ": cannot write: no such file or directory"});
  // The target is a directory: the rename fails after the temporary was written.
  const auto taken = dir.file("taken");
  fs::create_directory(taken);
  expect_write_error([&] { write_text(taken, "x"); }, {taken + ": cannot write: is a directory"});
  EXPECT_EQ(listing(dir.path()), std::vector<std::string>{"taken"});
  // /dev/full fails every write with ENOSPC.
  expect_write_error([&] { append_to_file("/dev/full", "line\n"); },
                     {"/dev/full: cannot write: no space left on device"});
}

TEST(AtomicFile, AppendsLines) {
  TempDir dir;
  const auto path = dir.file("log.jsonl");
  append_to_file(path, "{\"epoch\": 1}\n");
  append_to_file(path, "{\"epoch\": 2}\n");
  EXPECT_EQ(read_file(path), "{\"epoch\": 1}\n{\"epoch\": 2}\n");
}

TEST(AtomicFile, RemovesOnlyStaleTemporariesOfItsTarget) {
  TempDir dir;
  const auto target = dir.file("last.safetensors");
  const std::string dead = std::to_string(attnkit::testing::ended_process_id());
  const std::string alive = std::to_string(::getpid());
  const std::vector<std::string> names = {
      ".last.safetensors.tmp-" + dead + "-0",      // stale: removed
      ".last.safetensors.tmp-" + dead + "-7.mp4",  // stale, kept extension: removed
      ".last.safetensors.tmp-" + alive + "-0",     // this process may be writing it: kept
      ".best.safetensors.tmp-" + dead + "-0",      // another target: kept
      ".last.safetensors.tmp-notapid",             // not our pattern: kept
      "last.safetensors.tmp-" + dead + "-0",       // not hidden, not ours: kept
  };
  for (const auto& name : names) std::ofstream(dir.file(name)) << "x";
  EXPECT_EQ(remove_stale_temporaries(target), 2);
  std::vector<std::string> kept(names.begin() + 2, names.end());
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(listing(dir.path()), kept);
}

/// A 64 KiB tmpfs: the disk that fills up. Skipped where it cannot be mounted (not root).
class DiskFull : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!disk_.mounted()) GTEST_SKIP() << disk_.error() << ": the disk-full tests did not run";
  }
  std::string file(const std::string& name) const { return disk_.file(name); }

  attnkit::testing::ScopedTmpfs disk_{"64k"};
  const std::string& mount_point_ = disk_.path();
};

TEST_F(DiskFull, AFailedReplacementKeepsThePreviousFileAndNoTemporary) {
  const auto path = file("out.bin");
  const std::string good(40 * 1024, 'g');
  write_text(path, good);
  const std::string too_large(40 * 1024, 'b');  // old and new do not fit side by side
  expect_write_error([&] { write_text(path, too_large); },
                     {path + ": cannot write: no space left on device"});
  EXPECT_EQ(read_file(path), good);
  EXPECT_EQ(listing(mount_point_), std::vector<std::string>{"out.bin"});
}

TEST_F(DiskFull, CheckpointsAndImagesToo) {
  const auto model = file("m.safetensors");
  save_safetensors(model, {{"w", torch::ones({4096})}});  // 16 KiB
  const std::string before = read_file(model);
  expect_write_error<CheckpointError>(
      [&] {
        save_safetensors(model, {{"w", torch::zeros({16384})}});
      },  // 64 KiB
      {model + ": cannot write: no space left on device"});
  EXPECT_EQ(read_file(model), before);

  // Noise does not compress: a 160x160 PNG of it is about 75 KiB.
  const auto image = file("noise.png");
  cv::Mat noise(160, 160, CV_8UC3);
  cv::randu(noise, 0, 256);
  expect_write_error<ImageError>([&] { save_image_rgb(image, noise); },
                                 {image + ": cannot write: no space left on device"});
  EXPECT_EQ(listing(mount_point_), std::vector<std::string>{"m.safetensors"});
}

}  // namespace
}  // namespace attnkit::vision
