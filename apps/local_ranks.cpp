// apps/local_ranks.cpp: starts the ranks of a one-host data-parallel run and watches them.
#include "apps/local_ranks.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "apps/cli_common.h"

namespace attnkit::apps {
namespace {

// The ranks, for the signal handler that passes SIGTERM / SIGINT on to them.
constexpr int kMaxRanks = 256;
volatile pid_t g_ranks[kMaxRanks];
volatile int g_rank_count = 0;

void forward_signal(int signal) {
  for (int i = 0; i < g_rank_count; ++i) {
    if (g_ranks[i] > 0) ::kill(g_ranks[i], signal);
  }
}

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice for port 0).
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 29500;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = 29500;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    const char* name = ::sigabbrev_np(signal);
    return "was killed by signal " + std::to_string(signal) +
           (name ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "ended (status " + std::to_string(status) + ")";
}

}  // namespace

std::vector<std::string> without_nproc_option(const std::vector<std::string>& args) {
  std::vector<std::string> kept;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;  // and its value
      continue;
    }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    kept.push_back(args[i]);
  }
  return kept;
}

namespace {

/// Forks `nproc` ranks running `argv` with torchrun's variables (rendezvous on loopback at
/// `port`; OMP_NUM_THREADS = cores / nproc when `share_cores`). Empty after saying why one could
/// not start (the ranks already started are told to stop).
std::vector<pid_t> start_ranks(std::vector<char*>& argv, int nproc, int port, bool share_cores) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<pid_t> pids;
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      print_error("train", std::string("cannot start a process: ") + std::strerror(errno));
      forward_signal(SIGTERM);
      return {};
    }
    if (pid == 0) {
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      if (share_cores) {
        ::setenv("OMP_NUM_THREADS", std::to_string(std::max(1, cores / nproc)).c_str(), 1);
      }
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "attn train: error: cannot run /proc/self/exe: %s\n",
                   std::strerror(errno));
      std::_Exit(kExitSomeFailed);
    }
    pids.push_back(pid);
    g_ranks[rank] = pid;
    g_rank_count = rank + 1;
  }
  return pids;
}

/// Waits for every rank. The first to fail is reported and the others are stopped (SIGTERM,
/// SIGKILL after 10 s); its exit status is returned, else 0.
int wait_for_ranks(const std::vector<pid_t>& pids) {
  const int nproc = static_cast<int>(pids.size());
  int result = kExitOk;
  int running = nproc;
  bool stopping = false;
  auto stop_deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, stopping ? WNOHANG : 0);
    if (pid == 0) {  // stopping: the others have not ended yet
      if (std::chrono::steady_clock::now() > stop_deadline) {
        forward_signal(SIGKILL);
        stop_deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const auto found = std::find(pids.begin(), pids.end(), pid);
    if (found == pids.end()) continue;
    const int rank = static_cast<int>(found - pids.begin());
    g_ranks[rank] = 0;
    --running;
    const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (failed && !stopping) {
      print_error("train", "rank " + std::to_string(rank) + " of " + std::to_string(nproc) + " " +
                               describe_status(status) + "; stopping the other ranks");
      result = WIFEXITED(status) ? WEXITSTATUS(status) : kExitSomeFailed;
      stopping = true;
      forward_signal(SIGTERM);
      stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    }
  }
  return result;
}

}  // namespace

int run_local_ranks(const std::vector<std::string>& args, int nproc, bool threads_given) {
  if (nproc > kMaxRanks) {
    throw UsageError("--nproc " + std::to_string(nproc) + " is more than " +
                     std::to_string(kMaxRanks) + " processes");
  }
  const int port = free_loopback_port();
  const bool share_cores = !threads_given && std::getenv("OMP_NUM_THREADS") == nullptr;
  std::vector<std::string> argv_strings = {"/proc/self/exe"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::cerr << "attn train: starting " << nproc << " processes on this host (data parallel, "
            << "rendezvous at 127.0.0.1:" << port << ")\n";
  struct sigaction action {};
  action.sa_handler = forward_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  const auto pids = start_ranks(argv, nproc, port, share_cores);
  const int result = pids.empty() ? kExitSomeFailed : wait_for_ranks(pids);
  g_rank_count = 0;
  return result;
}

}  // namespace attnkit::apps
