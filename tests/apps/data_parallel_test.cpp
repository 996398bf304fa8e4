// tests/apps/data_parallel_test.cpp: `attn train classifier|captioner` over 2 processes on
// loopback: the same model as 1 process, a resume with another number of processes, a killed
// rank that stops the other, an unreachable master named, usage errors.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/apps/cli_support.h"
#include "tests/vision/test_support.h"
#include "vision/checkpoint/model_file.h"
#include "vision/checkpoint/safetensors.h"
#include "vision/data/fashion_mnist.h"

namespace attnkit::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A TCP port on 127.0.0.1 nothing listens on (the kernel's pick for port 0, released).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A small ViT with a two-stage convolutional stem, so BatchNorm's batch statistics are part of
// what 2 processes must reproduce.
std::string stem_classifier_config(const attnkit::testing::TempDir& dir) {
  const auto path = dir.file("stem.json");
  std::ofstream(path) << json{
      {"image_size", {28, 28}},
      {"patch_size", 4},
      {"in_channels", 1},
      {"stem_channels", {8, 16}},
      {"stem_strides", {1, 2}},
      {"dim", 32},
      {"depth", 2},
      {"num_heads", 2},
      {"mlp_hidden_dim", 64},
      {"class_token", false},
      {"pooling", "avg"},
      {"num_classes", 10}}.dump();
  return path;
}

// 576 training and 64 validation images, global batch 64: 9 steps an epoch, 27 in all, at a
// learning rate that moves the weights; fp32. One process gets the 2 threads that 2 processes of
// one thread each use.
std::string training_args(const attnkit::testing::TempDir& dir, const std::string& out,
                          int threads = 2, int epochs = 3) {
  return "train classifier --config " + stem_classifier_config(dir) +
         " --limit 640 --val-count 64 --batch-size 64 --warmup-epochs 0.5 --lr 3e-3"
         " --precision fp32 --seed 5 --epochs " +
         std::to_string(epochs) + " --threads " + std::to_string(threads) + " --out " + out;
}

// Largest absolute difference over the model tensors of two checkpoints (the trainer's own
// tensors, the optimizer state, are left out: they are keyed by address), but `skipped`.
double max_weight_difference(const std::string& a, const std::string& b,
                             const std::string& skipped = "") {
  const auto fa = vision::SafetensorsFile::open(a), fb = vision::SafetensorsFile::open(b);
  double worst = 0;
  int compared = 0;
  for (const auto& entry : fa.entries()) {
    if (entry.name.rfind(vision::kTrainerTensorPrefix, 0) == 0) continue;
    if (entry.name == skipped) continue;
    EXPECT_TRUE(fb.contains(entry.name)) << entry.name;
    if (!fb.contains(entry.name)) continue;
    const auto ta = fa.tensor(entry.name).to(torch::kDouble);
    const auto tb = fb.tensor(entry.name).to(torch::kDouble);
    EXPECT_EQ(ta.sizes(), tb.sizes()) << entry.name;
    if (ta.sizes() != tb.sizes()) continue;
    worst = std::max(worst, (ta - tb).abs().max().item<double>());
    ++compared;
  }
  EXPECT_GT(compared, 10);
  return worst;
}

void expect_same_log(const std::string& a, const std::string& b, double tolerance) {
  const auto la = read_jsonl(a), lb = read_jsonl(b);
  ASSERT_EQ(la.size(), lb.size());
  ASSERT_GT(la.size(), 0u);
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_EQ(la[i]["step"], lb[i]["step"]);
    for (const char* key : {"train_loss", "val_loss", "val_top1"}) {
      EXPECT_NEAR(la[i][key].get<double>(), lb[i][key].get<double>(), tolerance)
          << key << " of epoch " << i + 1;
    }
  }
}

TEST(DataParallel, TwoProcessesTrainTheModelOneProcessTrains) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir dir;
  const auto one = run_attn(training_args(dir, dir.file("one")));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto two = run_attn(training_args(dir, dir.file("two"), 1) + " --nproc 2");
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_NE(two.err.find("data parallel over 2 processes, 32 images each"), std::string::npos)
      << two.err;
  // The same run in one process on one thread: how far the order of float sums alone moves
  // these weights (Adam divides by the gradients' own scale, so rounding in a small gradient
  // shows). Here both differences were 2.6e-5 after 27 steps, the losses equal to 1e-8; at
  // --lr 1e-3, 4e-5 between the thread counts and 3e-7 between 2 processes and 1. A bug in the
  // averaging or in the shared batch statistics moves them by 1e-3 and more.
  const auto one_thread = run_attn(training_args(dir, dir.file("one_thread"), 1));
  ASSERT_EQ(one_thread.exit_code, 0) << one_thread.err;

  // Only rank 0 writes: one log line per epoch.
  const auto log = read_jsonl(dir.file("two/log.jsonl"));
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[2]["world_size"], 2);
  EXPECT_EQ(log[2]["step"], 27);
  expect_same_log(dir.file("one/log.jsonl"), dir.file("two/log.jsonl"), 1e-5);
  const double processes =
      max_weight_difference(dir.file("one/last.safetensors"), dir.file("two/last.safetensors"));
  const double threads = max_weight_difference(dir.file("one/last.safetensors"),
                                               dir.file("one_thread/last.safetensors"));
  std::printf(
      "max |weight difference| after 27 steps: 1 process against 2: %.3g; 2 threads "
      "against 1: %.3g\n",
      processes, threads);
  EXPECT_LE(processes, std::max(1e-5, 2 * threads));
  EXPECT_LE(
      max_weight_difference(dir.file("one/best.safetensors"), dir.file("two/best.safetensors")),
      std::max(1e-5, 2 * threads));
  // The model learned: the comparison is not between two barely trained models.
  EXPECT_LT(log[2]["train_loss"].get<double>(), log[0]["train_loss"].get<double>() - 0.1);
}

TEST(DataParallel, ACheckpointResumesWithAnotherNumberOfProcesses) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir dir;
  const auto straight = run_attn(training_args(dir, dir.file("straight")));
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  // The first epoch in one process, the other two in two processes from its checkpoint.
  const auto first = run_attn(training_args(dir, dir.file("split")) + " --max-steps 9");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto rest = run_attn(training_args(dir, dir.file("split"), 1) + " --nproc 2 --resume " +
                             dir.file("split/last.safetensors"));
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_NE(rest.err.find("resumed at epoch 2, step 9"), std::string::npos) << rest.err;
  expect_same_log(dir.file("straight/log.jsonl"), dir.file("split/log.jsonl"), 1e-5);
  // As above, the bar is what the order of float sums alone does to this run.
  const auto one_thread = run_attn(training_args(dir, dir.file("one_thread"), 1));
  ASSERT_EQ(one_thread.exit_code, 0) << one_thread.err;
  const double threads = max_weight_difference(dir.file("straight/last.safetensors"),
                                               dir.file("one_thread/last.safetensors"));
  EXPECT_LE(max_weight_difference(dir.file("straight/last.safetensors"),
                                  dir.file("split/last.safetensors")),
            std::max(1e-5, 2 * threads));
}

TEST(DataParallel, TwoProcessesTrainTheCaptionerOneProcessTrains) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir dir;
  ASSERT_EQ(run_attn("data scenes --count 80 --val-count 16 --out " + dir.file("scenes")).exit_code,
            0);
  // 64 training scenes of 4 captions, global batch 32: 8 steps an epoch. Soft attention without
  // dropout (both draw per rank), fp32; the shipped classifier's stem as the frozen encoder, its
  // features in an on-disk cache that the first run computes and the second reuses.
  const std::string args = "train captioner --data " + dir.file("scenes/scenes.json") +
                           " --encoder " + std::string(ATTNKIT_SOURCE_DIR) +
                           "/weights/fashion-vit.safetensors --encoder-depth 0 --image-size 32"
                           " --embed-dim 32 --hidden-dim 32 --attention-dim 16 --batch-size 32"
                           " --epochs 3 --dropout 0 --precision fp32 --lr 2e-3 --seed 3"
                           " --feature-cache " +
                           dir.file("features");
  const auto one = run_attn(args + " --threads 2 --out " + dir.file("one"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.err.find("64 images of 64x128 fp16 features; 0 shards reused, 1 computed"),
            std::string::npos)
      << one.err;
  const auto two = run_attn(args + " --threads 1 --nproc 2 --out " + dir.file("two"));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_NE(two.err.find("data parallel over 2 processes, 16 captions each"), std::string::npos)
      << two.err;
  EXPECT_NE(two.err.find("1 shards reused, 0 computed"), std::string::npos) << two.err;
  const auto la = read_jsonl(dir.file("one/log.jsonl")), lb = read_jsonl(dir.file("two/log.jsonl"));
  ASSERT_EQ(la.size(), 3u);
  ASSERT_EQ(lb.size(), 3u);
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_NEAR(la[i]["train_loss"].get<double>(), lb[i]["train_loss"].get<double>(), 1e-5);
    EXPECT_NEAR(la[i]["val_loss"].get<double>(), lb[i]["val_loss"].get<double>(), 1e-5);
    EXPECT_EQ(la[i]["val_bleu"], lb[i]["val_bleu"]);
  }
  EXPECT_LT(la[2]["train_loss"].get<double>(), la[0]["train_loss"].get<double>() - 0.3);
  // The additive score's bias shifts every score of a softmax alike: its exact gradient is 0,
  // so what it gets is rounding, which Adam scales up to steps of about the learning rate in
  // whatever direction the rounding went (2.6e-5 apart here). Every other tensor: 1e-5.
  EXPECT_LT(max_weight_difference(dir.file("one/last.safetensors"),
                                  dir.file("two/last.safetensors"), "attention.score.bias"),
            1e-5);
}

// Waits up to `seconds` for the process to end; its status, or -1 when it did not.
int wait_for_exit(Attn& attn, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (attn.running()) {
    if (Clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return attn.wait();
}

TEST(DataParallel, AKilledRankMakesTheOtherExitWithAMessage) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir dir;
  const std::string args = training_args(dir, dir.file("run"), 1, 1000) + " --dist-timeout 60";
  const std::string env =
      "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port());
  Attn rank0(args, dir.file("err0"), "RANK=0 " + env);
  Attn rank1(args, dir.file("err1"), "RANK=1 " + env);
  ASSERT_TRUE(rank0.started() && rank1.started());
  // Training has begun once rank 0 has written its first epoch's log line.
  ASSERT_TRUE(wait_until(rank0, [&] { return fs::exists(dir.file("run/log.jsonl")); }))
      << read_file(dir.file("err0"));
  ASSERT_TRUE(rank1.kill9());
  const auto killed_at = Clock::now();
  const int status = wait_for_exit(rank0, 60);
  const double seconds = std::chrono::duration<double>(Clock::now() - killed_at).count();
  ASSERT_NE(status, -1) << "rank 0 still running 60 s after rank 1 was killed";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_LT(seconds, 60);
  const auto err = read_file(dir.file("err0"));
  EXPECT_NE(err.find("attn train: error: data-parallel training: rank 0 of 2"), std::string::npos)
      << err;
  EXPECT_NE(err.find("another process has died or stopped answering"), std::string::npos) << err;
  // What rank 0 kept is a whole checkpoint.
  EXPECT_NO_THROW(vision::SafetensorsFile::open(dir.file("run/last.safetensors")));
}

TEST(DataParallel, NprocStopsTheOtherRanksWhenOneIsKilled) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  attnkit::testing::TempDir dir;
  Attn launcher(training_args(dir, dir.file("run"), 1, 1000) + " --nproc 2", dir.file("err"));
  ASSERT_TRUE(launcher.started());
  ASSERT_TRUE(wait_until(launcher, [&] { return fs::exists(dir.file("run/log.jsonl")); }))
      << read_file(dir.file("err"));
  // The ranks are the launcher's children: kill the second one.
  std::vector<pid_t> children;
  std::ifstream list("/proc/" + std::to_string(launcher.pid()) + "/task/" +
                     std::to_string(launcher.pid()) + "/children");
  for (pid_t pid; list >> pid;) children.push_back(pid);
  ASSERT_EQ(children.size(), 2u);
  ASSERT_EQ(::kill(children[1], SIGKILL), 0);
  const int status = wait_for_exit(launcher, 60);
  ASSERT_NE(status, -1) << "--nproc still running 60 s after a rank was killed";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  const auto err = read_file(dir.file("err"));
  EXPECT_NE(err.find("attn train: error: rank 1 of 2 was killed by signal 9 (SIGKILL); "
                     "stopping the other ranks"),
            std::string::npos)
      << err;
  EXPECT_EQ(::kill(children[0], 0), -1) << "rank 0 was left running";
}

TEST(DataParallel, AnUnreachableMasterIsNamed) {
  attnkit::testing::TempDir dir;
  const int port = free_port();
  const auto start = Clock::now();
  // Run through the environment, as torchrun's variables come.
  const std::string command =
      "RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " " +
      std::string(ATTNKIT_BINARY) + " train classifier --dist-timeout 2 --out " + dir.file("run") +
      " >/dev/null 2>" + dir.file("err");
  const int status = std::system(command.c_str());
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_LT(seconds, 60);
  const auto err = read_file(dir.file("err"));
  EXPECT_NE(err.find("rank 1 of 2 cannot reach the master at 127.0.0.1:" + std::to_string(port) +
                     " (MASTER_ADDR:MASTER_PORT)"),
            std::string::npos)
      << err;
}

TEST(DataParallel, BadSettingsAreUsageErrors) {
  attnkit::testing::TempDir dir;
  const std::string out = " --out " + dir.file("run");
  auto odd = run_attn("train classifier --nproc 3 --batch-size 64" + out);
  EXPECT_EQ(odd.exit_code, 2);
  EXPECT_NE(odd.err.find("--batch-size 64 does not split into 3 equal parts"), std::string::npos)
      << odd.err;
  const auto both = std::system(("WORLD_SIZE=2 RANK=0 " + std::string(ATTNKIT_BINARY) +
                                 " train classifier --nproc 2" + out + " 2>/dev/null")
                                    .c_str());
  EXPECT_EQ(WEXITSTATUS(both), 2);
  const auto bad_rank = std::system(("WORLD_SIZE=2 RANK=2 " + std::string(ATTNKIT_BINARY) +
                                     " train classifier" + out + " 2>" + dir.file("err"))
                                        .c_str());
  EXPECT_EQ(WEXITSTATUS(bad_rank), 2);
  EXPECT_NE(read_file(dir.file("err")).find("$RANK=2: expected a whole number from 0 to 1"),
            std::string::npos)
      << read_file(dir.file("err"));
  EXPECT_EQ(run_attn("train classifier --nproc -1" + out).exit_code, 2);
}

}  // namespace
}  // namespace attnkit::apps
