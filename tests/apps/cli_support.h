// tests/apps/cli_support.h: runs the real `attn` binary for the end-to-end tests.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/vision/test_support.h"

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
