// apps/main.cpp: `attn`: dispatches to a subcommand and maps errors to exit codes.
#include <malloc.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <new>
#include <string>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <opencv2/core/utils/logger.hpp>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"
#include "vision/json_error.h"

namespace {

// The commands are tasks of `attn` as `eval classifier` is a task of `attn eval`: one table type.
using Command = attnkit::apps::Subtask;

const Command kCommands[] = {
    {"classify", attnkit::apps::run_classify, "top-k classes of images with a ViT"},
    {"caption", attnkit::apps::run_caption, "describe images with a Show-Attend-Tell captioner"},
    {"overlay", attnkit::apps::run_overlay, "draw attention maps on images and videos"},
    {"serve", attnkit::apps::run_serve,
     "explore attention in the browser (HTTP server + JSON API)"},
    {"import", attnkit::apps::run_import, "convert a timm / Hugging Face / torchvision checkpoint"},
    {"inspect", attnkit::apps::run_inspect, "show what a model file holds"},
    {"train", attnkit::apps::run_train, "train a classifier or a captioner"},
    {"eval", attnkit::apps::run_eval, "measure a model or its maps (accuracy, BLEU, faithfulness)"},
    {"data", attnkit::apps::run_data, "generate the captioned Fashion-MNIST scenes"},
    {"bench", attnkit::apps::run_bench, "time ViT inference"},
    {"info", attnkit::apps::run_info, "the CPU, its features, threads, BLAS and chosen defaults"},
};

void print_usage(std::ostream& out) {
  out << "Usage: attn <command> [options] ...\n\n"
         "attnkit: Vision Transformers and attention maps, natively in C++.\n\nCommands:\n";
  for (const auto& c : kCommands) {
    out << "  " << c.name << std::string(10 - std::strlen(c.name), ' ') << c.summary << "\n";
  }
  out << "\nRun 'attn <command> --help' for a command's options.\n\n"
      << attnkit::apps::exit_codes_help();
}

// Runs one subcommand and turns whatever escapes it into attnkit's words and the exit code of
// the phase it came from: a model that cannot be used is 3, a bad option 2, anything else 4.
int run_command(const Command& command, int argc, char** argv) {
  namespace apps = attnkit::apps;
  const std::string name = command.name;
  try {
    return command.run(argc, argv);
  } catch (const apps::UsageError& e) {
    apps::print_error(name, std::string(e.what()) + " (see 'attn " + name + " --help')");
    return apps::kExitUsage;
  } catch (const attnkit::vision::CheckpointError& e) {
    apps::print_error(name, e.what());
    return apps::kExitBadModel;
  } catch (const attnkit::vision::Error& e) {
    apps::print_error(name, e.what());
    return apps::kExitNoInput;
  } catch (const std::bad_alloc&) {
    apps::print_error(name, "out of memory (try a smaller --batch-size, or fewer --threads)");
    return apps::kExitNoInput;
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    // LibTorch's allocator says "DefaultCPUAllocator: can't allocate memory: you tried to
    // allocate N bytes"; the user needs the size, not the allocator's name.
    if (const size_t at = what.find("you tried to allocate "); at != std::string::npos) {
      const double bytes = std::atof(what.c_str() + at + 22);
      char size[64];
      std::snprintf(size, sizeof(size), "%.1f GB", bytes / 1e9);
      apps::print_error(name, std::string("out of memory: a tensor of ") + size +
                                  " was asked for (try a smaller --batch-size or --beam)");
      return apps::kExitNoInput;
    }
    apps::print_error(name, "internal error: " + what);
    return apps::kExitNoInput;
  } catch (const nlohmann::json::exception& e) {
    apps::print_error(name, "internal error (JSON): " + attnkit::vision::json_error_text(e));
    return apps::kExitNoInput;
  } catch (const std::exception& e) {
    apps::print_error(name, e.what());
    return apps::kExitNoInput;
  }
}

// Results go to stdout; a full disk or a closed pipe there must not pass for success.
int finish_stdout(const std::string& command, int code) {
  errno = 0;
  std::cout.flush();
  const bool failed = !std::cout.good() || std::fflush(stdout) != 0 || std::ferror(stdout);
  if (!failed) return code;
  int error = errno;
  if (error == 0) {
    // The write failed earlier (at a std::endl) and errno has moved on since; one more byte
    // to the already broken output finds the reason again.
    std::clearerr(stdout);
    if (std::fputc('\n', stdout) == EOF || std::fflush(stdout) != 0) error = errno;
  }
  attnkit::apps::print_error(
      command, "cannot write output" + (error ? std::string(": ") + std::strerror(error) : ""));
  return code == attnkit::apps::kExitOk ? attnkit::apps::kExitNoInput : code;
}

}  // namespace

int main(int argc, char** argv) {
  // A forward pass allocates and frees the same large activations (15-20 MB each for ViT-B at
  // batch 8) again and again. glibc's defaults hand them to mmap and back, so every pass paid
  // for fresh zeroed pages: 12% of a batch-8 fp32 run was page faults. Keeping them in the heap
  // made it 1.15x faster (measured on an AMX Xeon VM, 2 threads).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's upper limit for this setting
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // OpenCV's own "[ WARN:0@...]" lines would come before attnkit's message about the same file.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  attnkit::vision::set_pixel_limit_hint("--max-pixels");
  if (argc < 2) {
    print_usage(std::cerr);
    return attnkit::apps::kExitUsage;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(std::cout);
    return finish_stdout("", attnkit::apps::kExitOk);
  }
  if (name == "--version") {
    if (argc > 2 && (std::strcmp(argv[2], "--verbose") == 0 || std::strcmp(argv[2], "-v") == 0)) {
      char info[] = "info";
      char* info_argv[] = {info, nullptr};
      return attnkit::apps::run_info(1, info_argv);
    }
    std::cout << "attn " << ATTNKIT_VERSION << "\n";
    return finish_stdout("", attnkit::apps::kExitOk);
  }
  for (const auto& c : kCommands) {
    if (name == c.name) return finish_stdout(name, run_command(c, argc - 1, argv + 1));
  }
  std::cerr << "attn: error: unknown command '" << name << "'\n\n";
  print_usage(std::cerr);
  return attnkit::apps::kExitUsage;
}
