// apps/local_ranks.h: `attn train --nproc N`: N processes of one data-parallel run on this host,
// started and watched the way torchrun does it.
#pragma once

#include <string>
#include <vector>

namespace attnkit::apps {

/// `args` without its --nproc option (as "--nproc N" or "--nproc=N"): what each rank runs.
std::vector<std::string> without_nproc_option(const std::vector<std::string>& args);

/// Runs `attn <args>` as ranks 0..nproc-1 of a run on loopback (RANK, LOCAL_RANK, WORLD_SIZE,
/// MASTER_ADDR=127.0.0.1, MASTER_PORT = a free port) and waits for them. Unless $OMP_NUM_THREADS
/// is set or `threads_given`, each rank gets cores / nproc threads (at least 1), so the ranks do
/// not fight over the cores. When a rank fails, the others are stopped (SIGTERM, then SIGKILL
/// after 10 s) and its exit code is returned (1 for a rank killed by a signal), with a line on
/// stderr naming the rank and what ended it.
int run_local_ranks(const std::vector<std::string>& args, int nproc, bool threads_given);

}  // namespace attnkit::apps
