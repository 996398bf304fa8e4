// tests/vision/train/train_checkpoint_test.cpp: what a resume does to a run directory that a killed
// run left: the log cut back to the checkpoint's epochs, stale temporaries gone.
#include "vision/train/train_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#include "tests/vision/test_support.h"

namespace attnkit::vision {
namespace {

namespace fs = std::filesystem;
using attnkit::testing::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(TrainCheckpoint, TrimDropsLaterEpochsAndATornLine) {
  TempDir dir;
  const auto log = dir.file("log.jsonl");
  const std::string kept = "{\"epoch\":1,\"step\":10}\n{\"epoch\":2,\"step\":20}\n";
  std::ofstream(log) << kept << "{\"epoch\":3,\"step\":30}\n{\"epoch\":4,\"st";
  trim_training_log(log, 2);
  EXPECT_EQ(read_file(log), kept);
  trim_training_log(log, 2);  // nothing to drop: the file stays as it is
  EXPECT_EQ(read_file(log), kept);
  trim_training_log(dir.file("none.jsonl"), 2);  // no log yet: nothing happens
  EXPECT_FALSE(fs::exists(dir.file("none.jsonl")));
}

TEST(TrainCheckpoint, StaleTemporariesOfTheRunFilesGo) {
  TempDir dir;
  const std::string dead = std::to_string(attnkit::testing::ended_process_id());
  for (const char* name : {"last.safetensors", "best.safetensors", "log.jsonl", "other.png"}) {
    std::ofstream(dir.file("." + std::string(name) + ".tmp-" + dead + "-3")) << "x";
  }
  remove_stale_run_temporaries(dir.path().string());
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    left.push_back(e.path().filename().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{".other.png.tmp-" + dead + "-3"});
}

}  // namespace
}  // namespace attnkit::vision
