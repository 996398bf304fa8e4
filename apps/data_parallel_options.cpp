// apps/data_parallel_options.cpp: --nproc, --dist-timeout and torchrun's environment.
#include "apps/data_parallel_options.h"

#include <boost/program_options.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "apps/cli_common.h"
#include "apps/local_ranks.h"
#include "vision/errors.h"

namespace attnkit::apps {

namespace po = boost::program_options;

void add_data_parallel_options(po::options_description& options, DataParallelSettings* settings) {
  options.add_options()(
      "nproc", po::value(&settings->nproc)->default_value(settings->nproc),
      "data parallel on this host: start N processes, each training on 1/N of every batch "
      "(--batch-size is the global batch; N must divide it). Across hosts, start one process "
      "per rank with torchrun's variables RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT")(
      "dist-timeout",
      po::value(&settings->timeout_seconds)->default_value(settings->timeout_seconds),
      "data parallel: seconds to wait for the other processes (rendezvous, each all-reduce) "
      "before failing");
}

DataParallelStart start_data_parallel(const DataParallelSettings& settings, int64_t batch_size,
                                      const po::variables_map& vm, int argc, char** argv) {
  if (settings.nproc < 0) {
    throw UsageError("--nproc must be 0 or more, got " + std::to_string(settings.nproc));
  }
  if (settings.timeout_seconds < 1) {
    throw UsageError("--dist-timeout must be at least 1 second, got " +
                     std::to_string(settings.timeout_seconds));
  }
  std::optional<vision::DataParallelOptions> environment;
  try {
    environment = vision::data_parallel_from_environment();
  } catch (const vision::DistributedError& e) {
    throw UsageError(e.what());
  }
  const auto check_split = [&](int parts, const std::string& source) {
    if (batch_size % parts != 0) {
      throw UsageError("--batch-size " + std::to_string(batch_size) + " does not split into " +
                       std::to_string(parts) + " equal parts" + source);
    }
  };
  DataParallelStart start;
  if (settings.nproc > 1) {
    if (environment) {
      throw UsageError(
          "--nproc starts the processes itself: leave out $WORLD_SIZE and $RANK, "
          "or start each rank yourself without --nproc");
    }
    check_split(settings.nproc, "");
    std::vector<std::string> args = {"train"};
    args.insert(args.end(), argv, argv + argc);
    start.launched_exit =
        run_local_ranks(without_nproc_option(args), settings.nproc, !vm["threads"].defaulted());
    return start;
  }
  if (!environment || environment->world_size < 2) return start;
  check_split(environment->world_size, " ($WORLD_SIZE)");
  environment->timeout = std::chrono::seconds(settings.timeout_seconds);
  try {
    start.group = std::make_unique<vision::DataParallel>(*environment);
  } catch (const vision::DistributedError& e) {
    print_error("train", e.what());
    start.launched_exit = kExitSomeFailed;
  }
  return start;
}

}  // namespace attnkit::apps
