// apps/data_parallel_options.h: the options and start-up both trainers share for data-parallel
// training: --nproc, --dist-timeout and torchrun's environment.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "vision/train/data_parallel.h"

#include "apps/program_options_fwd.h"

namespace attnkit::apps {

/// What --nproc and --dist-timeout say.
struct DataParallelSettings {
  int nproc = 0;
  int timeout_seconds = 120;
};

/// Adds --nproc and --dist-timeout to a trainer's options.
void add_data_parallel_options(boost::program_options::options_description& options,
                               DataParallelSettings* settings);

/// How a trainer goes on after its options are parsed.
struct DataParallelStart {
  /// Set when --nproc started the ranks and they have ended: the trainer returns this code.
  std::optional<int> launched_exit;
  /// This process's group when torchrun's variables describe a run of 2 or more, else null.
  std::unique_ptr<vision::DataParallel> group;
  /// Rank 0, or a run of one process: the one that prints progress and results.
  bool main_rank() const { return !group || group->is_main(); }
};

/// Checks the settings against the global batch (usage errors for a bad --nproc, a batch that
/// does not split, malformed torchrun variables, --nproc with them), then either runs the
/// --nproc ranks (`argc`/`argv` are the task's: argv[0] is "classifier" or "captioner") or joins
/// the group torchrun's variables describe. A failed rendezvous is printed and becomes
/// launched_exit = 1.
DataParallelStart start_data_parallel(const DataParallelSettings& settings, int64_t batch_size,
                                      const boost::program_options::variables_map& vm, int argc,
                                      char** argv);

}  // namespace attnkit::apps
