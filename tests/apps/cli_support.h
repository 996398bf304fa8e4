// tests/apps/cli_support.h: runs the real `attn` binary for the end-to-end tests.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/vision/test_support.h"
#include "vision/data/fashion_mnist.h"

extern char** environ;

namespace attnkit::apps {

struct RunResult {
  int exit_code = -1;
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};

/// Runs `attn <args>` through the shell; stdin from `stdin_text` when given.
inline RunResult run_attn(const std::string& args, const std::string& stdin_text = "") {
  attnkit::testing::TempDir tmp;
  const auto out_path = tmp.file("out"), err_path = tmp.file("err"), in_path = tmp.file("in");
  std::ofstream(in_path) << stdin_text;
  const std::string command = std::string(ATTNKIT_BINARY) + " " + args + " <" + in_path + " >" +
                              out_path + " 2>" + err_path;
  const int status = std::system(command.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

/// `attn <args>` started in the background with stderr to `err_path`: a process to kill.
/// `environment` ("NAME=value ...", may be empty) is added to its environment.
class Attn {
 public:
  Attn(const std::string& args, const std::string& err_path, const std::string& environment = "") {
    // exec (and env's exec), so the pid is attn's own and SIGKILL reaches it, not a shell.
    const std::string command = "exec env " + environment + " " + std::string(ATTNKIT_BINARY) +
                                " " + args + " >/dev/null 2>" + err_path;
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    if (posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
      pid_ = -1;
    }
  }
  ~Attn() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  /// False once the process has ended (and been reaped).
  bool running() {
    if (pid_ <= 0 || done_) return false;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) done_ = true;
    return !done_;
  }
  int wait() {
    if (!done_ && pid_ > 0 && ::waitpid(pid_, &status_, 0) == pid_) done_ = true;
    return status_;
  }
  /// SIGKILL now; true when that is what ended the process (not an exit just before).
  bool kill9() {
    if (!running()) return false;
    ::kill(pid_, SIGKILL);
    return WIFSIGNALED(wait()) && WTERMSIG(status_) == SIGKILL;
  }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool done_ = false;
};

/// Polls until `ready()` or the process ends; false when it ended first.
template <typename F>
bool wait_until(Attn& attn, F ready) {
  while (attn.running()) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

/// True when Debian's dataset-fashion-mnist is installed (the training tests need it).
inline bool have_fashion_mnist() {
  return std::ifstream(std::string(vision::kFashionMnistDir) + "/train-images-idx3-ubyte.gz")
      .good();
}

/// A whole file's bytes ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// One JSON value per line (a training log).
inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

/// Sets $ATTNKIT_CPU_FEATURES for the scope, so the `attn` runs inside it choose their defaults
/// as on a CPU with these flags (e.g. "avx2,fma": an AVX2-only CPU).
class PretendCpu {
 public:
  explicit PretendCpu(const char* flags) { setenv("ATTNKIT_CPU_FEATURES", flags, 1); }
  ~PretendCpu() { unsetenv("ATTNKIT_CPU_FEATURES"); }
  PretendCpu(const PretendCpu&) = delete;
  PretendCpu& operator=(const PretendCpu&) = delete;
};

/// An AVX2-only CPU's flags (AMD Zen 3): no native bf16.
inline const char* const kAvx2OnlyCpu = "avx2,fma";

}  // namespace attnkit::apps
