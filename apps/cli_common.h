// apps/cli_common.h: what every `attn` subcommand shares: exit codes, error printing, input
// expansion, threads and the progress bar.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "apps/program_options_fwd.h"

namespace attnkit::apps {

/// Process exit codes, the same for every subcommand.
enum ExitCode : int {
  kExitOk = 0,          ///< everything processed
  kExitSomeFailed = 1,  ///< some inputs failed; the rest were processed
  kExitUsage = 2,       ///< bad command line
  kExitBadModel = 3,    ///< the model file could not be used
  kExitNoInput = 4,     ///< no input could be processed
};

/// The exit-code table printed at the end of every --help.
std::string exit_codes_help();

/// "attn <command>: error: <message>" on stderr.
void print_error(const std::string& command, const std::string& message);
/// "attn <command>: warning: <message>" on stderr.
void print_warning(const std::string& command, const std::string& message);

/// Thrown for command-line mistakes; main() prints it with a hint and exits kExitUsage.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Parses argv (argv[0] = the subcommand) against `visible` options plus positional `inputs`
/// (if `positional` is non-empty). Prints help and returns false on --help.
bool parse_command_line(int argc, char** argv,
                        const boost::program_options::options_description& visible,
                        const std::string& positional, const std::string& usage,
                        const std::string& description, boost::program_options::variables_map& vm);

/// One input, expanded: a path to process, or an argument that could not be used and why.
struct InputItem {
  std::string path;
  std::string error;  ///< empty when the path is usable
};

/// Expands command-line inputs: files as given (any extension), directories recursively to
/// their image files (sorted, hidden entries skipped), "-" to the paths on stdin (one a line).
/// Missing paths come back as items with an error.
std::vector<InputItem> expand_inputs(const std::vector<std::string>& args);

/// One worker's part of a batch job (`--shard i/N`): the inputs whose path hashes to `index`
/// modulo `count`. The default, 0/1, is the whole job.
struct Shard {
  int index = 0;
  int count = 1;
};

/// Parses "i/N" (0 <= i < N, both decimal); throws UsageError naming the problem.
Shard parse_shard(const std::string& text);

/// Adds `--shard i/N` to `options`, parsed into `*shard`.
void add_shard_option(boost::program_options::options_description& options, Shard* shard);

/// The items of `shard`: a path belongs to shard hash(path) % N, where hash is 64-bit FNV-1a of
/// the path's bytes, so the split depends on no listing order, machine or run, and the N shards'
/// outputs together are the unsharded run's. Input order is kept within a shard.
std::vector<InputItem> select_shard(std::vector<InputItem> items, const Shard& shard);

/// True when both paths exist and are the same file (same device and inode: hard links,
/// symbolic links and other spellings of one file count).
bool same_file(const std::string& a, const std::string& b);

/// One task of a command that has tasks (`attn train classifier`, `attn data scenes`).
struct Subtask {
  const char* name;
  int (*run)(int, char**);  ///< argv[0] is the task's name
  const char* summary;
};

/// Runs the task named by argv[1] of `command` (argv[0]); prints the task list on --help (exit
/// 0) or when none is given (exit 2); throws UsageError for an unknown task.
int dispatch_subtask(int argc, char** argv, const std::string& command,
                     const std::vector<Subtask>& tasks);

/// --threads' help text, the same for every subcommand.
constexpr const char* kThreadsHelp =
    "CPU threads (0 = $OMP_NUM_THREADS, else all cores; more than the cores is capped)";

/// Adds `--max-pixels N` to `options`: images whose header declares more pixels are refused
/// before decoding (vision::set_max_image_pixels; default 100 megapixels).
void add_max_pixels_option(boost::program_options::options_description& options);

/// The threads a command uses without --threads: $OMP_NUM_THREADS if set, else every core.
int default_threads();

/// Sets LibTorch's intra-op threads; 0 = default_threads(). A count above the core count is
/// capped there with a warning; a negative one throws UsageError. Returns the count in use.
int set_threads(int requested);

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  ~ProgressBar();
  /// Advance by `n` items; `note` is shown after the counts (e.g. a loss).
  void advance(int64_t n, const std::string& note = "");
  /// Clears the bar line so other output can be printed; the next advance() redraws it.
  void clear();
  /// Clears the bar line for good.
  void finish();

 private:
  void draw();
  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  std::string note_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

/// Runs a training loop (`train`, which calls a trainer's run()) and finishes `bar` (the one the
/// loop's callbacks draw, if any then). When the loop
/// stops on a vision::Error (a NaN or Inf loss, a checkpoint or log that cannot be written), prints
/// it and returns kExitSomeFailed ("training failed"); kExitOk otherwise.
int run_training_loop(const std::function<void()>& train, std::unique_ptr<ProgressBar>& bar);

/// Escapes nothing, pads or cuts `text` to `width` columns (UTF-8 aware enough for labels).
std::string pad_right(const std::string& text, size_t width);

/// `command` and the arguments after argv[0], space-separated: how a model file was made, for
/// its metadata ("attn train captioner --data scenes.json ...").
std::string command_line_text(const std::string& command, int argc, char** argv);

}  // namespace attnkit::apps
