// apps/result_printer.h: what the per-image commands (`attn classify`, `attn caption`) print as
// they go: a text entry per image, one JSON line per image (--jsonl) or one document at the end
// (--json), each bad file named on stderr; and the batch's exit status.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/cli_common.h"

namespace attnkit::apps {

/// What every per-image command checks of its inputs and output options: inputs given, a batch
/// size of at least 1, not both --json and --jsonl. Throws UsageError.
void check_per_image_options(const std::vector<std::string>& inputs, int64_t batch_size, bool json,
                             bool jsonl);

class ResultPrinter {
 public:
  /// `command` names the messages ("classify"); `total` inputs drive the progress bar.
  ResultPrinter(std::string command, bool json, bool jsonl, int64_t total);

  /// A file that failed: said on stderr, and kept as {"path", "error"} for --json / --jsonl.
  void error(const std::string& path, const std::string& message);

  /// A file that succeeded: `as_json` gives its JSON object (made only for --json / --jsonl),
  /// `print_text` prints its text entry otherwise.
  void result(const std::function<nlohmann::json()>& as_json,
              const std::function<void()>& print_text);

  /// A warning on stderr, clear of the progress bar.
  void warn(const std::string& message);

  void advance(int64_t n) { progress_.advance(n); }

  /// With --json, prints `document` with "results" and "errors" added. Returns the exit status:
  /// 0 when every one of `total` inputs succeeded, kExitSomeFailed when some did, kExitNoInput
  /// when none did.
  int finish(nlohmann::json document, size_t total);

 private:
  std::string command_;
  bool json_;
  bool jsonl_;
  ProgressBar progress_;
  nlohmann::json results_ = nlohmann::json::array();
  nlohmann::json errors_ = nlohmann::json::array();
  int64_t succeeded_ = 0;
};

}  // namespace attnkit::apps
