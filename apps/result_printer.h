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
#include "apps/program_options_fwd.h"

namespace attnkit::apps {

/// What every per-image command (classify, caption) is told besides its model's own options.
struct PerImageParams {
  std::vector<std::string> inputs;  ///< images, directories, or - for paths on stdin
  std::string model_path;
  bool default_model = true;  ///< no --model: the shipped model
  std::string precision = "fp32";
  int64_t batch_size = 8;
  int threads = 0;
  bool json = false;
  bool jsonl = false;
  Shard shard;
};

/// The help texts that differ between the per-image commands.
struct PerImageHelp {
  std::string default_model;  ///< --model's default
  std::string model;          ///< --model
  std::string batch_size;     ///< --batch-size
  std::string json;           ///< --json
};

/// inputs, --model, --batch-size, --precision, --threads, --json, --jsonl, --max-pixels and
/// --shard into `p`.
void add_per_image_options(boost::program_options::options_description& options, PerImageParams& p,
                           const PerImageHelp& help);

/// Parses the command line into `p`: false when --help was shown. Then checks what every
/// per-image command needs: inputs given, a batch size of at least 1, not both --json and
/// --jsonl. Throws UsageError.
bool parse_per_image_command(int argc, char** argv,
                             const boost::program_options::options_description& options,
                             const std::string& usage, const std::string& summary,
                             PerImageParams& p);

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
