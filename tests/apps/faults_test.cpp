// tests/apps/faults_test.cpp: the real `attn` under faults: training killed with SIGKILL at
// random moments and resumed ends with the weights of an uninterrupted run; a NaN loss stops
// training and keeps the last checkpoint; a full disk leaves the previous file and no temporary.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include "tests/apps/cli_support.h"
#include "tests/vision/test_support.h"
#include "vision/checkpoint/model_file.h"
#include "vision/checkpoint/safetensors.h"
#include "vision/data/fashion_mnist.h"

extern char** environ;

namespace attnkit::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// Every model tensor of two checkpoints, byte for byte. The optimizer state is left out: its
/// LibTorch archive keys each parameter's state by the tensor's address in memory, which differs
/// from process to process; the weights after the resumed steps show that it was restored.
void expect_same_weights(const std::string& a, const std::string& b) {
  const auto fa = vision::SafetensorsFile::open(a), fb = vision::SafetensorsFile::open(b);
  ASSERT_EQ(fa.entries().size(), fb.entries().size());
  for (const auto& entry : fa.entries()) {
    if (entry.name.rfind(vision::kTrainerTensorPrefix, 0) == 0) continue;
    SCOPED_TRACE(entry.name);
    ASSERT_TRUE(fb.contains(entry.name));
    const auto ta = fa.tensor(entry.name).contiguous(), tb = fb.tensor(entry.name).contiguous();
    ASSERT_EQ(ta.sizes(), tb.sizes());
    ASSERT_EQ(ta.scalar_type(), tb.scalar_type());
    EXPECT_EQ(std::memcmp(ta.data_ptr(), tb.data_ptr(), ta.nbytes()), 0) << "differs";
  }
}

/// Runs `args` (which train into `out`) once without interruption into `reference` and once
/// killed with SIGKILL `kills` times at random moments (seeded), each time resumed from
/// last.safetensors; both must end with the same weights, the same log and only the run's files.
void kill_resume_and_compare(const std::string& train_args, const std::string& reference,
                             const std::string& out, int kills, uint64_t seed,
                             const std::vector<std::string>& logged) {
  const attnkit::testing::TempDir logs;
  const auto last = out + "/last.safetensors";

  // The reference run, timed from its first checkpoint to its end: the window for the kills.
  Attn whole(train_args + " --out " + reference, logs.file("reference.err"));
  ASSERT_TRUE(whole.started());
  ASSERT_TRUE(wait_until(whole, [&] { return fs::exists(reference + "/last.safetensors"); }))
      << read_file(logs.file("reference.err"));
  const auto first_checkpoint = Clock::now();
  ASSERT_EQ(whole.wait(), 0) << read_file(logs.file("reference.err"));
  const double window = std::chrono::duration<double>(Clock::now() - first_checkpoint).count();

  std::mt19937_64 random(seed);
  // Each kill comes within window / (kills + 1) of the run being ready, so all of them land
  // before the training could have finished, even on a machine that became faster.
  std::uniform_real_distribution<double> delay(0.0, window / (kills + 1));
  int killed = 0;
  for (int run = 0; killed < kills; ++run) {
    const auto err = logs.file("run" + std::to_string(run) + ".err");
    Attn attn(train_args + " --out " + out + (run > 0 ? " --resume " + last : ""), err);
    ASSERT_TRUE(attn.started());
    // Kill only once there is a checkpoint to resume from (the first run) or the resume has
    // loaded it (the later ones).
    const bool ready = wait_until(attn, [&] {
      return run == 0 ? fs::exists(last) : read_file(err).find("resumed at") != std::string::npos;
    });
    if (!ready) break;  // it finished before the kill
    std::this_thread::sleep_for(std::chrono::duration<double>(delay(random)));
    if (!attn.kill9()) break;
    ++killed;
    // What the kill left behind is a complete checkpoint, whatever it interrupted.
    EXPECT_NO_THROW(vision::SafetensorsFile::open(last)) << "after kill " << killed;
  }
  EXPECT_EQ(killed, kills) << "a run finished before its kill";
  // A kill that lands inside a checkpoint write leaves its temporary: the resume removes it.
  const auto stale =
      out + "/.last.safetensors.tmp-" + std::to_string(attnkit::testing::ended_process_id()) + "-0";
  std::ofstream(stale) << "half a checkpoint";
  const auto finish = run_attn(train_args + " --out " + out + " --resume " + last);
  ASSERT_EQ(finish.exit_code, 0) << finish.err;

  expect_same_weights(reference + "/last.safetensors", last);
  const std::vector<std::string> files = {"best.safetensors", "last.safetensors", "log.jsonl"};
  EXPECT_EQ(listing(out), files) << "a temporary or a stray file remains";
  EXPECT_NO_THROW(vision::SafetensorsFile::open(out + "/best.safetensors"));
  const auto expected = read_jsonl(reference + "/log.jsonl"), got = read_jsonl(out + "/log.jsonl");
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    for (const auto& key : logged) EXPECT_EQ(got[i][key], expected[i][key]) << i << " " << key;
  }
}

// A 2-block ViT of width 32 on 7x7 patches of Fashion-MNIST (20k parameters).
std::string tiny_classifier_config(const attnkit::testing::TempDir& dir) {
  const auto path = dir.file("tiny.json");
  std::ofstream(path) << json{
      {"image_size", {28, 28}},
      {"patch_size", 7},
      {"in_channels", 1},
      {"dim", 32},
      {"depth", 2},
      {"num_heads", 2},
      {"mlp_hidden_dim", 64},
      {"class_token", false},
      {"pooling", "avg"},
      {"num_classes", 10}}.dump();
  return path;
}

TEST(Faults, KilledClassifierTrainingResumesToTheSameWeights) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir dir;
  const std::string args = "train classifier --config " + tiny_classifier_config(dir) +
                           " --limit 700 --val-count 100 --batch-size 30 --epochs 6"
                           " --save-every 7 --threads 1";
  kill_resume_and_compare(args, dir.file("reference"), dir.file("killed"), 3, 1,
                          {"epoch", "step", "train_loss", "val_loss", "val_top1"});
}

TEST(Faults, KilledCaptionerTrainingResumesToTheSameWeights) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir dir;
  ASSERT_EQ(run_attn("data scenes --count 60 --val-count 10 --out " + dir.file("scenes")).exit_code,
            0);
  // Hard attention: its sampled cells and its REINFORCE baseline are part of what must replay.
  // The shipped classifier's stem as the frozen encoder and a narrow decoder keep it small.
  const std::string args = "train captioner --data " + dir.file("scenes/scenes.json") +
                           " --mode hard --encoder " + std::string(ATTNKIT_SOURCE_DIR) +
                           "/weights/fashion-vit.safetensors --encoder-depth 0 --image-size 32"
                           " --embed-dim 32 --hidden-dim 32 --attention-dim 16 --batch-size 25"
                           " --epochs 6 --threads 1";
  kill_resume_and_compare(args, dir.file("reference"), dir.file("killed"), 3, 2,
                          {"epoch", "step", "train_loss", "val_loss", "val_bleu"});
}

TEST(Faults, NonFiniteLossStopsTrainingAndKeepsTheLastCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir dir;
  const std::string args = "train classifier --config " + tiny_classifier_config(dir) +
                           " --limit 400 --val-count 100 --batch-size 30 --threads 1 --out " +
                           dir.file("run");
  const auto first = run_attn(args + " --epochs 1");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto last = dir.file("run/last.safetensors"), best = dir.file("run/best.safetensors");
  const std::string last_before = read_file(last), best_before = read_file(best);
  const std::string log_before = read_file(dir.file("run/log.jsonl"));

  // An absurd learning rate: the first step of epoch 2 (step 11) sends the weights to ~1e30 and
  // the next loss is not finite.
  const auto diverged = run_attn(args + " --epochs 3 --warmup-epochs 0 --lr 1e30 --resume " + last);
  EXPECT_EQ(diverged.exit_code, 1) << diverged.err;
  EXPECT_NE(diverged.err.find("attn train: error: training diverged at epoch 2, step "),
            std::string::npos)
      << diverged.err;
  EXPECT_NE(diverged.err.find(last + " is kept as the last good checkpoint"), std::string::npos)
      << diverged.err;
  EXPECT_EQ(read_file(last), last_before);
  EXPECT_EQ(read_file(best), best_before);
  EXPECT_EQ(read_file(dir.file("run/log.jsonl")), log_before);
  EXPECT_EQ(listing(dir.file("run")),
            (std::vector<std::string>{"best.safetensors", "last.safetensors", "log.jsonl"}));
}

TEST(Faults, FullDiskKeepsThePreviousOutputAndNoTemporary) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const attnkit::testing::ScopedTmpfs disk("4m");
  if (!disk.mounted()) GTEST_SKIP() << disk.error() << ": the disk-full tests did not run";
  const std::string sample =
      std::string(ATTNKIT_SOURCE_DIR) + "/samples/fashion/test0009-sneaker.png";

  // An overlay of an image and one of a video, then the disk fills up, then the same again.
  const auto overlay = disk.file("sneaker.png");
  ASSERT_EQ(run_attn("overlay " + sample + " --upscale 64 -o " + overlay).exit_code, 0);
  const std::string overlay_before = read_file(overlay);
  attnkit::testing::TempDir dir;
  const auto clip = dir.file("clip.avi");
  {
    cv::VideoWriter writer(clip, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10.0,
                           cv::Size(28, 28));
    ASSERT_TRUE(writer.isOpened());
    const cv::Mat frame = cv::imread(sample);
    for (int i = 0; i < 5; ++i) writer.write(frame);
  }
  const auto video = disk.file("clip.mp4");
  ASSERT_EQ(run_attn("overlay " + clip + " -t 1 -o " + video).exit_code, 0);
  const std::string video_before = read_file(video);

  // A training run's checkpoints, then a resume that cannot write its next ones.
  const std::string train = "train classifier --config " + tiny_classifier_config(dir) +
                            " --limit 400 --val-count 100 --batch-size 30 --threads 1 --out " +
                            disk.file("run");
  ASSERT_EQ(run_attn(train + " --epochs 1").exit_code, 0);
  const auto last = disk.file("run/last.safetensors");
  const std::string last_before = read_file(last);

  disk.fill();
  const auto again = run_attn("overlay " + sample + " --upscale 64 -o " + overlay);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find(overlay + ": cannot write: no space left on device"), std::string::npos)
      << again.err;
  EXPECT_EQ(read_file(overlay), overlay_before);
  const auto video_again = run_attn("overlay " + clip + " -t 1 -o " + video);
  EXPECT_NE(video_again.exit_code, 0);
  EXPECT_NE(video_again.err.find(video + ": cannot write: no space left on device"),
            std::string::npos)
      << video_again.err;
  EXPECT_EQ(read_file(video), video_before);

  const auto resumed = run_attn(train + " --epochs 2 --resume " + last);
  EXPECT_EQ(resumed.exit_code, 1) << resumed.err;
  EXPECT_NE(resumed.err.find(": cannot write: no space left on device"), std::string::npos)
      << resumed.err;
  EXPECT_EQ(read_file(last), last_before);

  EXPECT_EQ(listing(disk.path()),
            (std::vector<std::string>{"clip.mp4", "filler", "run", "sneaker.png"}));
  EXPECT_EQ(listing(disk.file("run")),
            (std::vector<std::string>{"best.safetensors", "last.safetensors", "log.jsonl"}));
}

}  // namespace
}  // namespace attnkit::apps
